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
