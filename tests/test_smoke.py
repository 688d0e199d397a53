"""The curl smoke test against a real uvicorn process on a free loopback port (bundled weights)."""
import shutil
import subprocess

import httpx
import pytest

from tests.conftest import ROOT, live_server


@pytest.fixture(scope="module")
def server():
    with live_server() as (base, proc):
        yield base, proc


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
    assert httpx.get(f"{base}/healthz").status_code == 200
    proc.terminate()
    assert proc.wait(timeout=30) == 0
