"""SIGTERM under load, with a real uvicorn: in-flight requests finish, new ones are refused, exit 0."""
import concurrent.futures
import re
import signal
import time

import httpx

from tests.conftest import live_server


def in_progress(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return float(re.search(r"^digitgen_requests_in_progress (\S+)$", text, re.M).group(1))


def test_sigterm_drains_in_flight_requests(tiny_weights):
    # a long batch wait keeps sampling requests in flight for ~3 s: a condition we can observe
    env = {"DIGITGEN_WEIGHTS_DIR": str(tiny_weights), "DIGITGEN_BATCH_WAIT_MS": "3000"}
    with live_server(env, extra_args=("--graceful-timeout", "20")) as (base, proc):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(httpx.get, f"{base}/sample", params={"model": "gan", "seed": i, "n": 4},
                                   timeout=30) for i in range(8)]
            deadline = time.monotonic() + 20
            while in_progress(base) < 9 and time.monotonic() < deadline:  # 8 samples + this /metrics call
                time.sleep(0.02)
            assert in_progress(base) >= 9
            proc.send_signal(signal.SIGTERM)
            refused = False
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"{base}/healthz", timeout=1)
                except httpx.TransportError:
                    refused = True
                    break
                time.sleep(0.02)
            assert refused, "new connections were still accepted after SIGTERM"
            responses = [f.result() for f in futures]
        assert [r.status_code for r in responses] == [200] * 8
        assert all(r.content.startswith(b"\x89PNG") for r in responses)
        assert proc.wait(timeout=30) == 0


def test_a_download_cut_by_the_graceful_timeout_is_one_log_line_not_a_traceback(tiny_weights):
    """A /dataset stream longer than --graceful-timeout is cut at shutdown: exit 0, and the log says so in one
    warning instead of uvicorn's "Exception in ASGI application" traceback."""
    env = {"DIGITGEN_WEIGHTS_DIR": str(tiny_weights)}
    with live_server(env, extra_args=("--graceful-timeout", "1")) as (base, proc):
        with httpx.stream("GET", f"{base}/dataset", params={"model": "gan", "n": 1_000_000, "seed": 1},
                          timeout=30) as response:
            assert response.status_code == 200
            proc.send_signal(signal.SIGTERM)
            try:
                for _ in response.iter_bytes():
                    pass
                cut = False
            except httpx.RemoteProtocolError:  # the chunked body ended before its last chunk
                cut = True
        assert proc.wait(timeout=30) == 0
        log = proc.stderr.read()
    assert cut
    assert "cut off by the shutdown's graceful timeout" in log and "Traceback" not in log, log[-3000:]
