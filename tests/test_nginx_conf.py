"""deploy/nginx.conf (compose's `scale` profile) run by Debian's nginx in front of a real replica.

The compose profile's nginx image cannot be pulled here, and Debian's nginx predates the upstream
`resolve` parameter (1.27.3), so the file is run with only what compose's DNS provides changed: no
`resolver` and no `resolve`, and the replicas' name replaced by loopback addresses: a live replica, one that crashed
(nothing listens) and one that is draining (every answer 503). Everything else (the health location,
the proxy and retry settings) is the file's own."""
import os
import re
import shutil
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from benchmarks.common import free_port, nginx
from tests.conftest import ROOT, live_server

needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx")
                                 and os.environ.get("DIGITGEN_REQUIRE_NGINX") != "1",
                                 reason="needs Debian's nginx (apt-get install nginx-light)")


def http_block(replicas: list[str]) -> str:
    """The http block of deploy/nginx.conf for these replica addresses, on nginx's test port."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    body = text[text.index("http {") + len("http {"):text.rindex("}")]
    body = re.sub(r"^\s*resolver [^;]*;\n", "", body, flags=re.M)
    line = re.search(r"^\s*server digitgen-replica:8000 resolve (.*);$", body, re.M)
    assert line, "the upstream's server line changed: update this test"
    servers = "".join(f"        server {address} {line.group(1)};\n" for address in replicas)
    body = body.replace(line.group(0) + "\n", servers)
    assert "listen 8080;" in body
    return body.replace("listen 8080;", "listen {port};")


@contextmanager
def draining_replica():
    """A replica shutting down: it answers every request, GET or POST, with 503."""
    class Draining(BaseHTTPRequestHandler):
        def refuse(self):
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(503)
            self.send_header("content-length", "0")
            self.end_headers()

        do_GET = do_POST = refuse

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Draining)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@needs_nginx
def test_the_scale_out_config_serves_health_and_retries_past_failed_replicas(tiny_weights):
    crashed = f"127.0.0.1:{free_port()}"
    with live_server({"DIGITGEN_WEIGHTS_DIR": str(tiny_weights)}) as (replica, _), draining_replica() as draining:
        live = replica.removeprefix("http://")
        with nginx(http_block([crashed, draining, live])) as front:
            health = httpx.get(f"{front}/nginx-health", timeout=5)
            assert health.status_code == 200 and health.text == "ok\n"
            png = httpx.get(f"{replica}/sample", params={"model": "gan", "seed": 0}, timeout=10).content
            # round robin sends the first ones to the failed replicas: a POST is retried past them too
            for _ in range(3):
                upload = httpx.post(f"{front}/reconstruct", params={"model": "vae"}, content=png, timeout=10,
                                    headers={"Content-Type": "image/png"})
                assert upload.status_code == 200
            for seed in range(6):
                through = httpx.get(f"{front}/sample", params={"model": "gan", "seed": seed}, timeout=10)
                direct = httpx.get(f"{replica}/sample", params={"model": "gan", "seed": seed}, timeout=10)
                assert through.status_code == 200 and through.content == direct.content
