"""Build the Dockerfile, run the image the way production does, and check what it answers.

    scripts/image-check.sh                  # = python -m scripts.image_check; docker where it runs, else podman
    scripts/image-check.sh --no-build       # check the image built last time

The image runs with a read-only root filesystem, a tmpfs /tmp, uid 10001, every capability dropped and
no new privileges. Checked: /readyz; /sample and /dataset byte-identical to this checkout's own service;
the HEALTHCHECK; the user, PID 1 and the entrypoint; no training extras and no compiler in the image;
SIGTERM during a /dataset download lets it finish, and the container exits 0 within the grace period.
Reported: the image size, build time and start-to-ready time. Writes benchmarks/results/image-<date>.json.

Where python:3.11-slim-trixie cannot be pulled (no registry), a stand-in base is made with debootstrap
(Debian bookworm: its python3 is 3.11) and given to the build as BASE. Where PyTorch's CPU index cannot
be reached, torch comes from pip's default index: the CUDA flavour, which is what the figures then say.
The host's CA bundle goes to the build as the secret `ca` (TLS through an intercepting proxy), never into
the image.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np

from benchmarks.common import ROOT, free_port, write_result
from digitgen_client._common import parse_npz

IMAGE = "localhost/digitgen:image-check"
BASE = "python:3.11-slim-trixie"
STAND_IN = "localhost/digitgen-stand-in-python:3.11"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
NAME = "digitgen-image-check"
COMPOSE_IMAGE = "localhost/digitgen:0.1.0-cpu"  # the default service's image in docker-compose.yml
GRACE_S = 15  # compose's stop_grace_period; the service drains for --graceful-timeout 10
DEPLOY_INPUTS = ("Dockerfile", ".dockerignore", "docker-compose.yml", "deploy")  # a change to any: check again
INPUTS_LABEL = "digitgen.deploy-inputs-sha256"
TRAINING_ONLY = ("torchvision", "sklearn", "matplotlib", "tqdm", "pytest", "schemathesis", "selenium")


def deploy_inputs_sha256() -> str:
    """One hash of the files an image check vouches for (DEPLOY_INPUTS), names and bytes."""
    digest = hashlib.sha256()
    for name in DEPLOY_INPUTS:
        top = ROOT / name
        for path in sorted([top] if top.is_file() else top.rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class Failed(RuntimeError):
    """A check failed: the message says which and what was seen."""


def run(*args: str, check: bool = True, timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise Failed(f"{' '.join(args[:4])} ... exited {result.returncode}: {(result.stderr or result.stdout)[-1500:]}")
    return result


class Engine:
    """podman or docker, with what each needs here."""

    def __init__(self, name: str):
        self.name = name
        self.env = None
        if name == "podman":
            # setrlimit is refused in some sandboxes: keep the host's limits rather than podman's defaults
            conf = Path(tempfile.mkdtemp(prefix="digitgen-podman-")) / "containers.conf"
            # crun fails on hosts with cgroups in hybrid mode: runc, for podman and podman-compose alike
            runtime = '[engine]\nruntime = "runc"\n' if shutil.which("runc") else ""
            conf.write_text("[containers]\ndefault_ulimits = []\n" + runtime)
            self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
        return run(self.name, *args, check=check, timeout=timeout, env=self.env)

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = ["docker", "compose"] if self.name == "docker" else ["podman-compose"]
        return run(*command, "-f", str(ROOT / "docker-compose.yml"), "-p", NAME, *args, check=check, timeout=600,
                   env=self.env)


def pick_engine(wanted: str | None) -> Engine:
    for name in ([wanted] if wanted else ["docker", "podman"]):
        if shutil.which(name) and run(name, "info", check=False, timeout=60).returncode == 0:
            return Engine(name)
    raise SystemExit("image-check: needs podman or docker (Debian: apt-get install -y podman buildah runc)")


def base_image(engine: Engine) -> tuple[str, str]:
    """(image for BASE, what it is): the real base where it can be pulled, else the debootstrap stand-in."""
    if engine("pull", BASE, check=False, timeout=300).returncode == 0:
        return BASE, BASE
    what = "stand-in for python:3.11-slim-trixie: Debian bookworm minbase with its python3 (3.11), debootstrap"
    if engine("image", "exists" if engine.name == "podman" else "inspect", STAND_IN, check=False).returncode == 0:
        return STAND_IN, what
    if not shutil.which("debootstrap"):
        raise SystemExit(f"image-check: {BASE} cannot be pulled and debootstrap is missing for a stand-in "
                         "(apt-get install -y debootstrap)")
    rootfs = Path(tempfile.mkdtemp(prefix="digitgen-rootfs-"))
    print(f"{BASE} cannot be pulled: making a stand-in with debootstrap (about a minute)", flush=True)
    run("debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm", str(rootfs))
    (rootfs / "usr/local/bin/python").symlink_to("/usr/bin/python3")  # where python:3.11-slim has it
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run([engine.name, "import", "--change", 'CMD ["python3"]', "-", STAND_IN], stdin=tar.stdout,
                   check=True, env=engine.env, capture_output=True)
    tar.wait()
    shutil.rmtree(rootfs)
    return STAND_IN, what


def torch_index() -> tuple[str, str]:
    """(index URL, flavour): PyTorch's CPU index where it answers, else pip's default index (CUDA build)."""
    try:
        httpx.head(CPU_INDEX + "/", timeout=10, verify=str(HOST_CA) if HOST_CA.exists() else True).raise_for_status()
        return CPU_INDEX, "cpu"
    except httpx.HTTPError:
        index = run(sys.executable, "-m", "pip", "config", "get", "global.index-url", check=False).stdout.strip()
        return index or "https://pypi.org/simple", "cuda (PyTorch's CPU index unreachable: pip's default index)"


def build(engine: Engine, base: str, index: str) -> float:
    started = time.monotonic()
    flags = ["--build-arg", f"BASE={base}", "--build-arg", f"TORCH_INDEX={index}", "-t", IMAGE,
             "--label", f"{INPUTS_LABEL}={deploy_inputs_sha256()}"]
    if HOST_CA.exists():
        flags += ["--secret", f"id=ca,src={HOST_CA}"]
    if engine.name == "podman":
        flags += ["--format", "docker", "--pull=never" if base == STAND_IN else "--pull=missing", "--network", "host"]
    engine("build", *flags, str(ROOT), timeout=3600)
    return time.monotonic() - started


def host_answers(paths: list[str]) -> dict[str, bytes]:
    """What this checkout's own service answers (in process, bundled weights, CPU)."""
    from fastapi.testclient import TestClient

    from service.config import Settings
    from service.main import create_app
    with TestClient(create_app(Settings(device="cpu"))) as client:
        return {path: client.get(path).content for path in paths}


def wait_ready(base: str, deadline_s: float = 180) -> float:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling a condition, with a deadline
    raise Failed(f"/readyz not 200 within {deadline_s} s")


def checks(engine: Engine, base: str, compared: dict[str, bytes]) -> dict:
    results: dict = {}
    for path, want in compared.items():
        got = httpx.get(base + path, timeout=60).content
        if "format=" not in path and path.startswith("/dataset"):
            # npz: the arrays; zipfile's zip64 headers differ between Python 3.11 patch releases
            n = int(parse_qs(urlsplit(path).query)["n"][0])
            try:
                same = all(np.array_equal(a, b) for a, b in zip(parse_npz(got, n), parse_npz(want, n)))
            except httpx.DecodingError as exc:
                raise Failed(f"{path}: {exc}") from None
        else:
            same = got == want
        if not same:
            raise Failed(f"{path}: {len(got)} bytes from the image, {len(want)} from the host, not the same")
    results["identical_to_host"] = list(compared)

    def inside(*command: str) -> str:
        return engine("exec", NAME, *command).stdout.strip()

    uid = inside("id", "-u")
    pid1 = inside("cat", "/proc/1/cmdline").replace("\0", " ").strip()
    if uid != "10001" or "-m service" not in pid1:
        raise Failed(f"runs as uid {uid} with PID 1 {pid1!r}; wanted 10001 and python -m service")
    results.update(uid=int(uid), pid1=pid1)
    extras = inside("python", "-c", "import importlib.util as u, json; print(json.dumps([m for m in "
                    f"{list(TRAINING_ONLY)!r} if u.find_spec(m)]))")
    compilers = engine("exec", NAME, "sh", "-c", "command -v gcc cc g++ c++ clang || true").stdout.split()
    if json.loads(extras) or compilers:
        raise Failed(f"the image holds training extras {extras} or compilers {compilers}")
    results.update(training_extras=[], compilers=[])
    health = health_status(engine)
    if health != "healthy":
        raise Failed(f"HEALTHCHECK says {health!r}")
    results["healthcheck"] = health
    return results


def health_status(engine: Engine) -> str:
    if engine.name == "podman":  # podman runs HEALTHCHECKs from systemd timers; run it once here
        return "healthy" if engine("healthcheck", "run", NAME, check=False).returncode == 0 else "unhealthy"
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline:
        status = engine("inspect", "--format", "{{.State.Health.Status}}", NAME).stdout.strip()
        if status != "starting":
            break
        time.sleep(1)  # polling a condition, with a deadline
    return status


def drain_on_sigterm(engine: Engine, base: str, n: int) -> dict:
    """SIGTERM while a /dataset download streams: the download completes whole, the container exits 0 in time."""
    outcome: dict = {}
    headers_in = threading.Event()

    def download():
        body = bytearray()
        with httpx.stream("GET", f"{base}/dataset", params={"model": "gan", "n": n, "seed": 5}, timeout=120) as r:
            headers_in.set()
            for chunk in r.iter_bytes():
                body += chunk
        outcome["items"] = len(parse_npz(bytes(body), n)[1])  # raises unless all n arrived

    worker = threading.Thread(target=download)
    worker.start()
    if not headers_in.wait(60):
        raise Failed("/dataset did not start streaming")
    stopping = time.monotonic()
    engine("stop", "-t", str(GRACE_S), NAME, timeout=GRACE_S + 30)
    stop_s = time.monotonic() - stopping
    worker.join(60)
    code = int(engine("inspect", "--format", "{{.State.ExitCode}}", NAME).stdout.strip())
    printed = engine("logs", NAME)
    logs = printed.stderr + printed.stdout
    if outcome.get("items") != n or code != 0 or stop_s >= GRACE_S:
        raise Failed(f"after SIGTERM: {outcome.get('items')} of {n} items arrived, exit status {code}, "
                     f"stopped in {stop_s:.1f} s (grace {GRACE_S} s)")
    if "Traceback" in logs:
        raise Failed("the container logged a traceback while draining:\n" + logs[-2000:])
    return {"items_delivered": n, "exit_status": code, "stop_s": round(stop_s, 2), "grace_s": GRACE_S}


def compose_check(engine: Engine, compared: dict[str, bytes]) -> dict:
    """docker-compose.yml's default service from the image just built (tagged as the compose file names it):
    up, ready on its published port, healthy, answering like the host; then down."""
    if engine.name == "podman" and not shutil.which("podman-compose"):
        raise SystemExit("image-check: --compose needs podman-compose (apt-get install -y podman-compose)")
    engine("tag", IMAGE, COMPOSE_IMAGE)
    engine.compose("down", check=False)
    started = time.monotonic()
    engine.compose("up", "-d", "--no-build", "digitgen")
    try:
        wait_ready("http://127.0.0.1:8000")
        ready_s = time.monotonic() - started
        path = "/sample?model=gan&seed=3"
        if httpx.get("http://127.0.0.1:8000" + path, timeout=30).content != compared[path]:
            raise Failed(f"compose: {path} differs from the host's answer")
        container = engine("ps", "--filter", f"name={NAME}", "--format", "{{.Names}}").stdout.split()
        read_only = engine("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", container[0]).stdout.strip()
        if read_only != "true":
            raise Failed(f"compose: the container's root filesystem is not read-only ({read_only})")
        return {"service": "digitgen", "image": f"{IMAGE} tagged {COMPOSE_IMAGE}", "start_to_ready_s": round(ready_s, 2),
                "read_only_root": True, "identical_to_host": [path]}
    finally:
        engine.compose("down", check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["podman", "docker"], help="default: docker where it runs, else podman")
    parser.add_argument("--no-build", action="store_true", help=f"check the image already tagged {IMAGE}")
    parser.add_argument("--compose", action="store_true", help="also bring up docker-compose.yml's default service")
    parser.add_argument("--drain-n", type=int, default=100_000, help="items of the /dataset download SIGTERM meets")
    args = parser.parse_args()
    engine = pick_engine(args.engine)
    report: dict = {"engine": engine.name}  # write_result adds the machine
    if args.no_build:
        report.update(base="(not built in this run)", torch_flavour="(not built in this run)")
    else:
        base, report["base"] = base_image(engine)
        index, report["torch_flavour"] = torch_index()
        print(f"building with {engine.name}: base {base}, torch from {index}", flush=True)
        report["build_s"] = round(build(engine, base, index), 1)
    report["image_bytes"] = int(engine("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    report["deploy_inputs_sha256"] = engine("image", "inspect", "--format", f'{{{{index .Config.Labels "{INPUTS_LABEL}"}}}}',
                                            IMAGE).stdout.strip()
    compared = host_answers(["/sample?model=gan&seed=3", "/dataset?model=gan&n=3000&seed=1",
                             "/dataset?n=2000&seed=2&format=tar"])
    engine("rm", "-f", NAME, check=False)
    port = free_port()
    started = time.monotonic()
    engine("run", "-d", "--name", NAME, "--read-only", "--tmpfs", "/tmp", "--user", "10001:10001", "--cap-drop",
           "ALL", "--security-opt", "no-new-privileges", "-p", f"127.0.0.1:{port}:8000", IMAGE)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        report["start_to_ready_s"] = round(time.monotonic() - started, 2)
        report["checks"] = checks(engine, base, compared)
        report["sigterm"] = drain_on_sigterm(engine, base, args.drain_n)
    except Failed as exc:
        print(engine("logs", NAME, check=False).stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"image-check: FAILED: {exc}") from None
    finally:
        engine("rm", "-f", NAME, check=False)
    if args.compose:
        try:
            report["compose"] = compose_check(engine, compared)
        except Failed as exc:
            raise SystemExit(f"image-check: FAILED: {exc}") from None
    path = write_result("image", report)
    print(json.dumps(report, indent=2))
    print(f"image-check: passed; wrote {path}")


if __name__ == "__main__":
    main()
