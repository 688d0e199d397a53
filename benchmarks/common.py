"""Helpers shared by the benchmarks: start servers on loopback, run wrk, read process memory."""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
INSTALL_HINT = "install the load generator with: apt-get update && apt-get install -y wrk"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, deadline_s: float = 120) -> float:
    """Poll until `url` answers 200; returns seconds since the call."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise TimeoutError(url)


@contextmanager
def server(args: list[str], ready_path: str = "/readyz", env: dict | None = None, executable: str | None = None,
           deadline_s: float = 120, log: Path | None = None, cwd: Path = ROOT):
    """Start `python <args> --port P` (or `<executable> <args> --port P`) on loopback; yields
    (base_url, process, seconds_to_ready). log: a file for the server's output (a chatty server
    would otherwise fill the pipe and stall); the server's whole process group is stopped at the end
    (frameworks with worker processes). cwd: the checkout to run (another commit's worktree)."""
    port = free_port()
    started = time.monotonic()
    sink = open(log, "wb") if log is not None else None  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([executable or sys.executable, *args, "--port", str(port)], cwd=cwd,
                            env={**os.environ, **(env or {})}, stdout=sink or subprocess.DEVNULL,
                            stderr=sink or subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + ready_path, proc, deadline_s)
        yield base, proc, time.monotonic() - started
    finally:
        _stop_group(proc)
        if sink is not None:
            sink.close()


def _stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    try:  # whatever of the group outlived its leader (a worker that ignored SIGTERM)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def wrk(url: str, connections: int, seconds: float, threads: int = 1, script: Path | None = None) -> dict:
    """Run wrk and parse requests/s, p50/p99 latency (ms), non-2xx and socket errors."""
    if shutil.which("wrk") is None:
        raise SystemExit(f"wrk not found; {INSTALL_HINT}")
    # --timeout 30s: wrk's default (2 s) counts a queued bulk request (n=1024 at 64 connections) as a
    # socket error although the service answers it
    cmd = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           "--timeout", "30s"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests_per_s": rps, "p50_ms": p50, "p99_ms": p99, "requests": total,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0}


def lua_string(data: bytes) -> str:
    """`data` as the body of a Lua string literal (decimal escapes), for wrk scripts."""
    return "".join(f"\\{b}" for b in data)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MiB (from /proc)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process and its descendants (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / ticks


def machine() -> dict:
    import torch
    return {"cpu_cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def write_result(kind: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    path = RESULTS / f"{kind}-{stamp}.json"
    path.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                "machine": machine(), **payload}, indent=2) + "\n")
    return path


def stream_dataset(base: str, **params) -> tuple[float, int]:
    """One GET /dataset with these parameters, its body read as it streams and dropped: (seconds, bytes)."""
    started, size = time.perf_counter(), 0
    with httpx.stream("GET", f"{base}/dataset", params=params, timeout=600) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            size += len(chunk)
    return time.perf_counter() - started, size


def wait_idle(base: str, deadline_s: float = 120) -> None:
    """Wait until the service has no request in flight but the /metrics call asking: a load run that
    ends leaves requests the server still works through, which would otherwise bill the next run."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        text = httpx.get(f"{base}/metrics", timeout=30).text
        match = re.search(r"^digitgen_requests_in_progress (\S+)$", text, re.M)
        if match is None or float(match.group(1)) <= 1:
            return
        time.sleep(0.1)


NGINX_HINT = "nginx not found; apt-get update && apt-get install -y nginx-light"
_NGINX_MAIN = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{http}
}}
"""


@contextmanager
def nginx(http: str):
    """Debian's nginx on a free loopback port, in a scratch folder, with `http` (the body of the http
    block; the text `{prefix}` and `{port}` in it are replaced) as its configuration; yields its base URL
    once it answers."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit(NGINX_HINT)
    port = free_port()
    with tempfile.TemporaryDirectory() as prefix:
        Path(prefix).chmod(0o755)  # the workers run as an unprivileged user and write temp files here
        conf = Path(prefix) / "nginx.conf"
        http = http.replace("{prefix}", prefix).replace("{port}", str(port))
        conf.write_text(_NGINX_MAIN.format(prefix=prefix, http=http))
        proc = subprocess.Popen([binary, "-c", str(conf), "-p", prefix, "-g", "daemon off;"], stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    httpx.get(base, timeout=1)
                    break
                except httpx.TransportError:
                    if proc.poll() is not None:
                        raise RuntimeError(f"nginx exited: {proc.stderr.read().decode()[-500:]}") from None
                    time.sleep(0.05)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=10)
