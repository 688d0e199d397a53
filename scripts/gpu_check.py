"""GPU check: one command that proves the CUDA path end to end, next to a CPU server, in one run.

    scripts/gpu-check.sh                 # = python -m scripts.gpu_check; about 3-5 minutes on one GPU
    python -m scripts.gpu_check --dry-run   # the same plumbing on CPU only, in well under a minute

1. Starts two servers (benchmarks.common.server): DIGITGEN_DEVICE=cuda and DIGITGEN_DEVICE=cpu.
   Calls every endpoint on both (GET /sample png/npy/json/digit=, /dataset npz and tar, /reconstruct,
   /encode, /decode, GET and POST /interpolate, /models, /healthz, /readyz, /metrics), checks status
   and content type, that /models and /readyz report the cuda device, and compares the seeded
   answers byte for byte; where they differ, the decoded images: the fraction of differing
   pixels and the largest difference (0-255).
2. Throughput of gan, vae and gan-seed on cuda and cpu: single PNGs per second (wrk, 16
   connections; skipped with a note when wrk is not on the PATH) and bulk images per second
   (GET /sample?format=npy&n=4096, 4 requests at a time).
3. Trains the course recipes (vae-seed, gan-seed: the bundled cards' epochs, seed 0) on cuda into
   a scratch folder (never models/weights), reports their time against the 20 s target (the
   training loops, as the cards' "seconds" time them, and the whole commands' wall time) and
   their final losses next to the CPU run's in the bundled model cards. "Within seed noise": a
   second seed is trained too (--noise-seeds), and a loss is within noise when it is no further
   from the card's than max(3 x |seed 0 - seed 1|, 2 % of the card's value).
4. Writes benchmarks/results/gpu-<date>.json (--out for another folder; a dry run writes
   gpu-dry-run-<date>.json) and prints a summary. Exit status 0 when every endpoint answered as
   expected on both devices, the device checks passed and every training run finished; the speed
   target and the loss verdict are reported, not enforced.

On a GPU host. The script needs no particular torch (the host's own CUDA build is used as it is;
do not reinstall torch), Python >= 3.11, the service's other dependencies and, for the training
part, the trainer's (tqdm, matplotlib, scikit-learn, torchvision built for the host's torch):

    pip install --no-deps -e .                     # digitgen itself, leaving the host's torch alone
    pip install numpy pillow safetensors fastapi 'uvicorn[standard]' pydantic-settings \\
        prometheus-client python-multipart python-json-logger fastapi-offline httpx tenacity
    pip install tqdm matplotlib scikit-learn       # + torchvision matching torch, e.g. `pip install --no-deps torchvision==0.26.*` for torch 2.11
    apt-get install -y wrk                         # optional: the single-PNG rates
    python -m trainer fetch-data                   # or copy data/mnist (4 IDX files, raw or .gz) over
    scripts/gpu-check.sh

(pip install -e '.[train]' would pull the pinned torch; the lines above avoid that.)
"""
from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from benchmarks.common import INSTALL_HINT, RESULTS, ROOT, machine, server, wait_idle, wrk

MODELS = ("gan", "vae", "gan-seed")
PRESETS = ("vae-seed", "gan-seed")
TRAIN_TARGET_S = 20.0  # both course recipes on an H100
NOISE_FACTOR = 3.0     # within noise: |gpu - card| <= max(NOISE_FACTOR x seed spread, NOISE_FLOOR x |card|)
NOISE_FLOOR = 0.02
SERVER_FLAGS = ["-m", "service", "--no-access-log", "--log-level", "warning"]
# every answer below depends only on the model, the seed and the parameters (README: Seeds), so
# the two devices should agree; "compare": False for those that carry the device or counters
ENDPOINTS = [
    # name, method, path, body builder key, expected content type, compare
    ("healthz", "GET", "/healthz", None, "application/json", False),
    ("readyz", "GET", "/readyz", None, "application/json", False),
    ("models", "GET", "/models", None, "application/json", False),
    ("model gan", "GET", "/models/gan", None, "application/json", False),
    ("sample png", "GET", "/sample?model=gan&seed=1", None, "image/png", True),
    ("sample grid png", "GET", "/sample?model=vae&n=16&nrow=4&scale=2&seed=2", None, "image/png", True),
    ("sample npy", "GET", "/sample?model=gan&n=64&format=npy&seed=3", None, "application/x-npy", True),
    ("sample json", "GET", "/sample?model=vae&n=2&format=json&seed=4", None, "application/json", True),
    ("sample digit", "GET", "/sample?model=gan&digit=3&n=4&seed=5", None, "image/png", True),
    ("sample gan-seed npy", "GET", "/sample?model=gan-seed&n=64&format=npy&seed=6", None, "application/x-npy", True),
    ("dataset npz", "GET", "/dataset?model=gan&n=256&seed=7&format=npz", None, "application/x-npz", True),
    ("dataset npz verified", "GET", "/dataset?model=gan&n=256&seed=7&format=npz&verified=true", None,
     "application/x-npz", True),
    ("dataset tar (classifier labels)", "GET", "/dataset?model=vae&n=64&seed=8&format=tar", None,
     "application/x-tar", True),
    ("reconstruct raw body", "POST", "/reconstruct?model=vae", "png_body", "image/png", True),
    ("reconstruct multipart side by side", "POST", "/reconstruct?model=vae&side_by_side=true", "png_multipart",
     "image/png", True),
    ("encode", "POST", "/encode?model=vae&seed=9", "png_multipart", "application/json", True),
    ("decode npy", "POST", "/decode", "decode_json", "application/x-npy", True),
    ("interpolate get", "GET", "/interpolate?model=gan&seed_a=1&seed_b=2&steps=8", None, "image/png", True),
    ("interpolate post latents", "POST", "/interpolate", "interpolate_json", "image/png", True),
    ("interpolate post images", "POST", "/interpolate?model=vae&steps=5", "png_pair", "image/png", True),
    ("metrics", "GET", "/metrics", None, "text/plain", False),
]


# ---- the servers' answers ---------------------------------------------------------------------

def request_kwargs(kind: str | None, png: bytes, latent_dim: int) -> dict:
    if kind is None:
        return {}
    if kind == "png_body":
        return {"content": png, "headers": {"Content-Type": "image/png"}}
    if kind == "png_multipart":
        return {"files": {"image": ("digit.png", png, "image/png")}}
    if kind == "png_pair":
        return {"files": {"image_a": ("a.png", png, "image/png"), "image_b": ("b.png", png, "image/png")}}
    a = [round(0.25 * ((i % 7) - 3), 2) for i in range(latent_dim)]
    b = [-v for v in a]
    if kind == "decode_json":
        return {"json": {"model": "vae", "latents": [a, b, [0.0] * latent_dim], "format": "npy"}}
    if kind == "interpolate_json":
        return {"json": {"model": "vae", "latents": [a, b], "steps": 6}}  # latent_dim is vae's
    raise ValueError(kind)


def call_all(client: httpx.Client, base: str, png: bytes, latent_dim: int) -> dict[str, httpx.Response]:
    answers = {}
    for name, method, path, body, _, _ in ENDPOINTS:
        answers[name] = client.request(method, base + path, **request_kwargs(body, png, latent_dim))
    return answers


def decode(content_type: str, body: bytes) -> dict:
    """The images (uint8 arrays), numbers and labels in an answer, whatever its format."""
    out: dict = {"pixels": [], "floats": [], "labels": []}
    if content_type.startswith("image/png"):
        out["pixels"].append(np.asarray(Image.open(io.BytesIO(body))))
    elif content_type.startswith("application/x-npy"):
        array = np.load(io.BytesIO(body))
        (out["pixels"] if array.dtype == np.uint8 else out["floats"]).append(array)
    elif content_type.startswith("application/x-npz"):
        with np.load(io.BytesIO(body)) as npz:
            out["pixels"].append(npz["images"])
            out["labels"].extend(npz["labels"].tolist())
    elif content_type.startswith("application/x-tar"):
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            for member in tar.getmembers():
                data = tar.extractfile(member).read()
                if member.name.endswith(".png"):
                    out["pixels"].append(np.asarray(Image.open(io.BytesIO(data))))
                else:
                    out["labels"].append(data.decode())
    elif content_type.startswith("application/json"):
        _walk_json(json.loads(body), out)
    return out


def _walk_json(value, out: dict, key: str = "") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _walk_json(v, out, k)
    elif isinstance(value, list):
        for v in value:
            _walk_json(v, out, key)
    elif isinstance(value, str) and "png" in key:
        try:
            out["pixels"].append(np.asarray(Image.open(io.BytesIO(base64.b64decode(value)))))
        except (binascii.Error, OSError):
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out["floats"].append(np.asarray([value], dtype=np.float64))


def _flat(arrays: list) -> np.ndarray:
    return np.concatenate([np.asarray(a).ravel() for a in arrays]) if arrays else np.zeros(0)


def compare(content_type: str, reference: bytes, other: bytes) -> dict:
    """Byte identity, else the measured difference: differing bytes, pixels, labels and numbers."""
    result: dict = {"byte_identical": reference == other, "bytes": [len(reference), len(other)]}
    if len(reference) == len(other) and reference:
        a, b = np.frombuffer(reference, np.uint8), np.frombuffer(other, np.uint8)
        result["bytes_differing_fraction"] = float(np.mean(a != b))
    if result["byte_identical"]:
        return result
    da, db = decode(content_type, reference), decode(content_type, other)
    pa, pb = _flat(da["pixels"]), _flat(db["pixels"])
    if pa.size and pa.shape == pb.shape:
        diff = np.abs(pa.astype(np.int16) - pb.astype(np.int16))
        result.update(pixels=int(pa.size), pixels_differing_fraction=float(np.mean(diff > 0)),
                      max_abs_pixel_diff=int(diff.max()), mean_abs_pixel_diff=float(diff.mean()))
    elif pa.size or pb.size:
        result["pixels_shape_mismatch"] = [int(pa.size), int(pb.size)]
    fa, fb = _flat(da["floats"]), _flat(db["floats"])
    if fa.size and fa.shape == fb.shape:
        result["max_abs_number_diff"] = float(np.max(np.abs(fa.astype(np.float64) - fb.astype(np.float64))))
    if da["labels"] or db["labels"]:
        same = len(da["labels"]) == len(db["labels"])
        result["labels_differing"] = (sum(x != y for x, y in zip(da["labels"], db["labels"])) if same
                                      else f"{len(da['labels'])} vs {len(db['labels'])} labels")
    return result


def check_endpoints(ref: dict[str, httpx.Response], target: dict[str, httpx.Response], target_device: str) -> dict:
    rows, failures = [], []
    for name, method, path, _, want_type, seeded in ENDPOINTS:
        a, b = ref[name], target[name]
        row = {"name": name, "method": method, "path": path, "status": {"reference": a.status_code,
                                                                       "target": b.status_code},
               "content_type": b.headers.get("content-type", "")}
        row["ok"] = (a.status_code == b.status_code == 200 and row["content_type"].startswith(want_type)
                     and a.headers.get("content-type", "").startswith(want_type))
        if not row["ok"]:
            failures.append(f"{name}: {a.status_code}/{b.status_code} {row['content_type']!r}: {b.text[:200]!r}")
        elif seeded:
            row["comparison"] = compare(want_type, a.content, b.content)
            row["comparison"]["etag_equal"] = a.headers.get("etag") == b.headers.get("etag")
        rows.append(row)
    # the target server runs where it was told to, every model included
    models = target["models"].json() if target["models"].status_code == 200 else {}
    ready = target["readyz"].json() if target["readyz"].status_code == 200 else {}
    devices = {m["name"]: m["device"] for m in models.get("models", [])}
    want = "cuda:0" if target_device == "cuda" else target_device  # the service names the index
    device_ok = bool(devices) and all(d == want for d in devices.values()) and models.get("device") == want \
        and ready.get("device") == want
    if not device_ok:
        failures.append(f"device check: expected {want}, /models says {models.get('device')} {devices}, "
                        f"/readyz says {ready.get('device')}")
    metrics_ok = "digitgen_requests_total" in target["metrics"].text
    if not metrics_ok:
        failures.append("metrics: no digitgen_requests_total")
    compared = [r["comparison"] for r in rows if "comparison" in r]
    pixel_diffs = [c.get("max_abs_pixel_diff", 0) for c in compared]
    summary = {
        "compared": len(compared),
        "byte_identical": sum(c["byte_identical"] for c in compared),
        "etag_equal": sum(c["etag_equal"] for c in compared),
        "max_abs_pixel_diff": max(pixel_diffs, default=0),
        "max_pixels_differing_fraction": max((c.get("pixels_differing_fraction", 0.0) for c in compared), default=0.0),
        "max_abs_number_diff": max((c.get("max_abs_number_diff", 0.0) for c in compared), default=0.0),
        "differing": [r["name"] for r in rows if "comparison" in r and not r["comparison"]["byte_identical"]],
    }
    return {"endpoints": rows, "seeded_outputs": summary,
            "device_check": {"expected": want, "models": devices, "models_device": models.get("device"),
                             "readyz_device": ready.get("device"), "ok": device_ok},
            "failures": failures}


# ---- throughput -------------------------------------------------------------------------------

def single_png_rate(base: str, model: str, seconds: float, connections: int = 16) -> dict:
    wait_idle(base)
    result = wrk(f"{base}/sample?model={model}", connections, seconds, threads=2)
    result["connections"] = connections
    return result


def single_png_rates(bases: dict[str, str], seconds: float) -> list[dict] | dict:
    """wrk's single-PNG rate for each model on each server; {"skipped": why} without wrk."""
    if shutil.which("wrk") is None:
        return {"skipped": f"wrk not on PATH ({INSTALL_HINT})"}
    rows = []
    for model in MODELS:
        for label, base in bases.items():
            try:
                rows.append({"model": model, "server": label, **single_png_rate(base, model, seconds)})
            except (subprocess.CalledProcessError, AttributeError) as exc:  # wrk failed, or its output did not parse
                rows.append({"model": model, "server": label, "error": str(exc)})
    return rows


def bulk_rate(base: str, model: str, n: int, seconds: float, concurrency: int = 4) -> dict:
    """GET /sample?format=npy&n=N, `concurrency` at a time for `seconds` (each client at least once)."""
    wait_idle(base)
    url = f"{base}/sample?model={model}&n={n}&format=npy"
    deadline = time.monotonic() + seconds

    def client_loop(_) -> int:
        done = 0
        with httpx.Client(timeout=300) as client:
            while done == 0 or time.monotonic() < deadline:
                answer = client.get(url)
                answer.raise_for_status()
                if len(answer.content) < n * 28 * 28:
                    raise RuntimeError(f"short answer: {len(answer.content)} bytes for n={n}")
                done += 1
        return done

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        requests = sum(pool.map(client_loop, range(concurrency)))
    elapsed = time.monotonic() - started
    return {"n": n, "concurrency": concurrency, "requests": requests, "seconds": round(elapsed, 3),
            "images_per_s": requests * n / elapsed}


def memory_mb(pid: int) -> dict:
    """Resident set now and its peak (VmHWM), MiB, of one process (the server: one worker)."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key = "rss_mb" if line.startswith("VmRSS") else "rss_peak_mb"
                values[key] = round(int(line.split()[1]) / 1024, 1)
    except FileNotFoundError:
        pass
    return values


def gpu_memory_mb(pid: int) -> float | None:
    """GPU memory a process holds, from nvidia-smi (None where it is not there)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 2 and fields[0] == str(pid):
            return float(fields[1])
    return None


# ---- training ---------------------------------------------------------------------------------

def train(preset: str, device: str, out: Path, seed: int, epochs: int | None, data_dir: Path, dry_run: bool) -> dict:
    cmd = [sys.executable, "-m", "trainer", "train", "--preset", preset, "--device", device, "--out", str(out),
           "--seed", str(seed), "--no-progress"]  # no --weights-dir: models/weights stays as it is
    cmd += ["--dry-run"] if dry_run else ["--epochs", str(epochs), "--data-dir", str(data_dir)]
    started = time.monotonic()
    run = {"preset": preset, "seed": seed, "command": " ".join(cmd[1:])}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {**run, "ok": False, "wall_s": round(time.monotonic() - started, 2), "error": "timed out after 600 s"}
    run["wall_s"] = round(time.monotonic() - started, 2)
    if proc.returncode != 0:
        return {**run, "ok": False, "error": (proc.stderr or proc.stdout)[-1500:]}
    card = json.loads((out / f"{preset}.json").read_text())
    return {**run, "ok": True, "train_s": card["training"]["seconds"], "device": card["training"]["device"],
            "torch": card["training"]["torch"], "epochs": card["epochs"], "final_losses": card["final_losses"]}


def judge(losses: dict, card_losses: dict, noise_losses: dict | None) -> dict:
    """Each final loss next to the card's, and whether the difference is within seed noise."""
    verdict = {}
    for key, reference in card_losses.items():
        value = losses.get(key)
        if value is None:
            continue
        spread = abs(noise_losses[key] - value) if noise_losses and key in noise_losses else None
        tolerance = max(NOISE_FACTOR * spread if spread is not None else 0.0, NOISE_FLOOR * abs(reference))
        delta = value - reference
        verdict[key] = {"card_cpu": reference, "this_run": value, "diff": delta,
                        "relative_diff": delta / reference if reference else None,
                        "seed_spread": spread, "tolerance": tolerance, "within_seed_noise": abs(delta) <= tolerance}
    return verdict


def training_part(device: str, data_dir: Path, dry_run: bool, noise_seeds: int, scratch: Path) -> dict:
    notes, runs, comparison = [], [], {}
    if not dry_run:
        from trainer.data import DataError, verify
        try:
            verify(data_dir)
        except DataError as exc:
            return {"ok": False, "error": str(exc), "runs": []}
    for preset in PRESETS:
        card = json.loads((ROOT / "models" / "weights" / f"{preset}.json").read_text())
        main = train(preset, device, scratch / f"{preset}-seed0", 0, card["epochs"], data_dir, dry_run)
        runs.append(main)
        noise = None
        for extra in range(1, noise_seeds + 1):
            extra_run = train(preset, device, scratch / f"{preset}-seed{extra}", extra, card["epochs"], data_dir,
                              dry_run)
            extra_run["for_seed_noise"] = True
            runs.append(extra_run)
            if extra_run["ok"] and noise is None:
                noise = extra_run["final_losses"]
        if main["ok"]:
            comparison[preset] = judge(main["final_losses"], card["final_losses"], noise)
    if dry_run:
        notes.append("dry run: 2 epochs of 5 batches on synthetic data, so the losses cannot match the cards; "
                     "the comparison only exercises the plumbing")
    if noise_seeds == 0:
        notes.append(f"no second seed trained: 'within seed noise' uses only the {NOISE_FLOOR:.0%} floor")
    recipe_runs = [r for r in runs if not r.get("for_seed_noise")]
    total_wall = sum(r["wall_s"] for r in recipe_runs)
    total_train = sum(r.get("train_s", 0.0) for r in recipe_runs)
    # the cards' "seconds" time the training loop alone, as train_s does: the like-for-like figure
    card_seconds = sum(json.loads((ROOT / "models" / "weights" / f"{p}.json").read_text())["training"]["seconds"]
                       for p in PRESETS)
    return {
        "ok": all(r["ok"] for r in runs), "runs": runs, "comparison": comparison,
        # wall: the whole `python -m trainer train` (start-up, data, figures); loop: training alone
        "recipes_wall_s": round(total_wall, 2), "recipes_train_loop_s": round(total_train, 2),
        "cards_cpu_train_loop_s": card_seconds,
        "speedup_vs_cards": round(card_seconds / total_train, 1) if total_train else None,
        "target_s": TRAIN_TARGET_S, "target_met": total_train <= TRAIN_TARGET_S,
        "target_met_wall": total_wall <= TRAIN_TARGET_S,
        "within_seed_noise": all(v["within_seed_noise"] for c in comparison.values() for v in c.values()),
        "rule": f"|this run - card| <= max({NOISE_FACTOR:g} x |seed 0 - seed 1|, {NOISE_FLOOR:.0%} of the card's value)",
        "notes": notes,
    }


# ---- the whole check --------------------------------------------------------------------------

def run_check(args) -> dict:
    started = time.monotonic()
    dry = args.dry_run
    target_device = "cpu" if dry else args.device
    notes = []
    if dry:
        notes.append("dry run: both servers on cpu, short load runs, trainer --dry-run")
    else:
        import torch
        if not torch.cuda.is_available():
            raise SystemExit(f"gpu-check: no CUDA GPU visible to torch {torch.__version__}; use --dry-run to "
                             "check the plumbing on CPU")
    seconds = 1.0 if dry else args.seconds
    bulk_n = 64 if dry else 4096
    bulk_seconds = 0.5 if dry else args.seconds
    quiet = {"DIGITGEN_API_KEY": ""}  # the check sends no key: a key in this shell must not lock it out
    result: dict = {"dry_run": dry, "devices": {"reference": "cpu", "target": target_device}}
    failures: list[str] = []
    with httpx.Client(timeout=300) as client, \
            server(SERVER_FLAGS, env={**quiet, "DIGITGEN_DEVICE": "cpu"}) as (cpu_base, cpu_proc, cpu_start), \
            server(SERVER_FLAGS, env={**quiet, "DIGITGEN_DEVICE": target_device}) as (dev_base, dev_proc, dev_start):
        servers = {"cpu": (cpu_base, cpu_proc), target_device: (dev_base, dev_proc)} if target_device != "cpu" \
            else {"cpu": (cpu_base, cpu_proc), "cpu (as target)": (dev_base, dev_proc)}
        result["servers"] = {"reference": {"device": "cpu", "start_to_ready_s": round(cpu_start, 2),
                                           **memory_mb(cpu_proc.pid)},
                             "target": {"device": target_device, "start_to_ready_s": round(dev_start, 2),
                                        **memory_mb(dev_proc.pid), "gpu_memory_mb": gpu_memory_mb(dev_proc.pid)}}
        png = client.get(f"{cpu_base}/sample?model=gan&seed=1").content  # one upload for both
        latent_dim = next(m["latent_dim"] for m in client.get(f"{cpu_base}/models").json()["models"]
                          if m["name"] == "vae")
        reference = call_all(client, cpu_base, png, latent_dim)
        target = call_all(client, dev_base, png, latent_dim)
        checked = check_endpoints(reference, target, target_device)
        failures += checked.pop("failures")
        result.update(checked)

        bases = {label: base for label, (base, _) in servers.items()}
        throughput = {"single_png": single_png_rates(bases, seconds),
                      "bulk": [{"model": model, "server": label, **bulk_rate(base, model, bulk_n, bulk_seconds)}
                               for model in MODELS for label, base in bases.items()]}
        if isinstance(throughput["single_png"], dict):
            notes.append("single-PNG rates skipped: wrk not on PATH")
        result["throughput"] = throughput
        result["servers"]["reference"].update(memory_mb(cpu_proc.pid))
        result["servers"]["target"].update(memory_mb(dev_proc.pid))
        if target_device != "cpu":
            result["servers"]["target"]["gpu_memory_mb"] = gpu_memory_mb(dev_proc.pid)

    if args.skip_train:
        result["training"] = {"skipped": "--skip-train"}
    else:
        noise_seeds = args.noise_seeds if args.noise_seeds is not None else (0 if dry else 1)
        with tempfile.TemporaryDirectory(prefix="digitgen-gpu-check-") as scratch:
            result["training"] = training_part(target_device, Path(args.data_dir), dry, noise_seeds, Path(scratch))
        if not result["training"]["ok"]:
            failures.append("training: " + (result["training"].get("error")
                                            or "; ".join(r.get("error", "")[-300:] for r in result["training"]["runs"]
                                                         if not r["ok"])))
    result["failures"] = failures
    result["ok"] = not failures
    result["notes"] = notes
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    return result


def write(result: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    kind = "gpu-dry-run" if result["dry_run"] else "gpu"
    path = out_dir / f"{kind}-{now:%Y-%m-%d}.json"
    path.write_text(json.dumps({"date": now.isoformat(timespec="seconds"), "machine": machine(), **result},
                               indent=2, default=str) + "\n")
    return path


def summary(result: dict) -> str:
    lines = []
    dev = result["devices"]["target"]
    servers = result["servers"]
    lines.append(f"servers: cpu ready in {servers['reference']['start_to_ready_s']} s "
                 f"(RSS peak {servers['reference'].get('rss_peak_mb')} MiB), {dev} ready in "
                 f"{servers['target']['start_to_ready_s']} s (RSS peak {servers['target'].get('rss_peak_mb')} MiB"
                 + (f", GPU {servers['target']['gpu_memory_mb']} MiB" if servers['target'].get('gpu_memory_mb') else "")
                 + ")")
    ok = sum(r["ok"] for r in result["endpoints"])
    lines.append(f"endpoints: {ok}/{len(result['endpoints'])} answered as expected on both; device check "
                 f"{'ok' if result['device_check']['ok'] else 'FAILED'} ({result['device_check']['models']})")
    s = result["seeded_outputs"]
    lines.append(f"seeded answers {dev} vs cpu: {s['byte_identical']}/{s['compared']} byte-identical, "
                 f"ETag equal {s['etag_equal']}/{s['compared']}; where not: up to "
                 f"{s['max_pixels_differing_fraction']:.2%} of pixels differ, by at most {s['max_abs_pixel_diff']}/255"
                 + (f"; numbers by {s['max_abs_number_diff']:.3g}" if s["max_abs_number_diff"] else ""))
    t = result["throughput"]
    lines.append("| model | server | single PNG req/s (wrk c=16) | p99 ms | bulk images/s (npy) |")
    lines.append("|---|---|---|---|---|")
    singles = {(r["model"], r["server"]): r for r in t["single_png"]} if isinstance(t["single_png"], list) else {}
    for b in t["bulk"]:
        single = singles.get((b["model"], b["server"]), {})
        rate = f"{single['requests_per_s']:.0f}" if "requests_per_s" in single else single.get("error", "skipped")
        p99 = f"{single['p99_ms']:.2f}" if "p99_ms" in single else "-"
        lines.append(f"| {b['model']} | {b['server']} | {rate} | {p99} | {b['images_per_s']:.0f} (n={b['n']}) |")
    tr = result["training"]
    if "skipped" in tr:
        lines.append(f"training: skipped ({tr['skipped']})")
    elif "runs" in tr and tr["runs"]:
        for r in tr["runs"]:
            extra = " (seed noise)" if r.get("for_seed_noise") else ""
            lines.append(f"train {r['preset']} seed {r['seed']}{extra}: " + (
                f"{r['wall_s']} s wall, {r['train_s']} s training loop on {r['device']}, final {r['final_losses']}"
                if r["ok"] else "FAILED " + r["error"][-300:]))
        lines.append(f"course recipes: training loops {tr['recipes_train_loop_s']} s (target <= {tr['target_s']:g} s: "
                     f"{'met' if tr['target_met'] else 'not met'}; the CPU cards' {tr['cards_cpu_train_loop_s']} s, "
                     f"x{tr['speedup_vs_cards']}), whole commands {tr['recipes_wall_s']} s wall "
                     f"({'within' if tr['target_met_wall'] else 'over'} the target)")
        lines.append(f"final losses within seed noise of the CPU cards: {'yes' if tr['within_seed_noise'] else 'NO'} "
                     f"({tr['rule']})")
        for preset, losses in tr["comparison"].items():
            for key, v in losses.items():
                lines.append(f"  {preset} {key}: {v['this_run']:.4g} vs card {v['card_cpu']:.4g} "
                             f"({v['diff']:+.3g}, tolerance {v['tolerance']:.3g})")
        for note in tr["notes"]:
            lines.append(f"note: {note}")
    else:
        lines.append(f"training: FAILED {tr.get('error')}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    for failure in result["failures"]:
        lines.append(f"FAIL {failure}")
    lines.append(f"{'OK' if result['ok'] else 'FAILED'} in {result['elapsed_s']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU only, tiny durations, trainer --dry-run")
    parser.add_argument("--device", default="cuda", help="the device under test (default cuda)")
    parser.add_argument("--seconds", type=float, default=5.0, help="each load run (default 5)")
    parser.add_argument("--noise-seeds", type=int, help="extra seeds trained per recipe for the seed noise "
                        "(default 1; 0 on a dry run)")
    parser.add_argument("--skip-train", action="store_true", help="serving checks only")
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "mnist"), help="MNIST IDX files (raw or .gz)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for gpu-<date>.json")
    args = parser.parse_args(argv)
    result = run_check(args)
    path = write(result, args.out)
    print(summary(result))
    print(f"wrote {path}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
