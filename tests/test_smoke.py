"""The curl smoke test against a real uvicorn process on a free loopback port."""
import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen, deadline_s: float = 90) -> None:
    """Poll /readyz until 200 (a readiness condition, not a fixed sleep)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError("server did not become ready")


@pytest.fixture(scope="module")
def server():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "service", "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, env={**os.environ, "DIGITGEN_DEVICE": "cpu"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(base, proc)
        yield base, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_smoke_against_real_uvicorn(server):
    base, proc = server
    result = subprocess.run(["bash", str(ROOT / "scripts" / "smoke.sh"), base], capture_output=True, text=True,
                            timeout=300)
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "passed, 0 failed" in result.stdout
    assert proc.poll() is None  # still serving


def test_sigterm_exits_cleanly(server):
    base, proc = server
    # runs last in this module: the fixture's terminate() is what the grace period covers
    assert httpx.get(f"{base}/healthz").status_code == 200
    proc.terminate()
    assert proc.wait(timeout=30) == 0
