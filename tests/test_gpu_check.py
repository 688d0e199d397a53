"""scripts/gpu_check.py (scripts/gpu-check.sh): the dry run exercises every part on CPU and writes its
JSON; the comparison and the seed-noise verdict are checked on made-up answers, since two CPU
servers agree byte for byte."""
from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from scripts import gpu_check as gpu
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu-check")
    result = subprocess.run([sys.executable, "-m", "scripts.gpu_check", "--dry-run", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = out.glob("gpu-dry-run-*.json")
    assert f"wrote {path}" in result.stdout
    return json.loads(path.read_text())


@pytest.mark.timeout(300)
def test_dry_run_checks_every_endpoint(dry_run):
    assert dry_run["dry_run"] is True and dry_run["ok"] is True and dry_run["failures"] == []
    assert dry_run["devices"] == {"reference": "cpu", "target": "cpu"}
    rows = dry_run["endpoints"]
    assert [r["name"] for r in rows] == [e[0] for e in gpu.ENDPOINTS]
    assert all(r["ok"] and r["status"] == {"reference": 200, "target": 200} for r in rows)
    assert dry_run["device_check"]["ok"] and set(dry_run["device_check"]["models"].values()) == {"cpu"}
    # two CPU processes: the seeded answers are the same bytes (and the same ETags)
    seeded = dry_run["seeded_outputs"]
    assert seeded["compared"] == sum(e[5] for e in gpu.ENDPOINTS) >= 15
    assert seeded["byte_identical"] == seeded["etag_equal"] == seeded["compared"]
    assert seeded["differing"] == [] and seeded["max_abs_pixel_diff"] == 0
    for server in dry_run["servers"].values():
        assert server["start_to_ready_s"] > 0 and server["rss_peak_mb"] > 100


@pytest.mark.timeout(300)
def test_dry_run_measures_throughput(dry_run):
    throughput = dry_run["throughput"]
    bulk = throughput["bulk"]
    assert {(r["model"], r["server"]) for r in bulk} == {(m, s) for m in gpu.MODELS for s in ("cpu", "cpu (as target)")}
    assert all(r["images_per_s"] > 0 and r["requests"] >= r["concurrency"] for r in bulk)
    single = throughput["single_png"]
    if isinstance(single, dict):  # no wrk on this machine: skipped, and said so
        assert "wrk not on PATH" in single["skipped"]
        assert any("wrk" in note for note in dry_run["notes"])
    else:
        assert len(single) == len(bulk)
        assert all(r["requests_per_s"] > 0 and r["connections"] == 16 for r in single), single


@pytest.mark.timeout(300)
def test_dry_run_trains_both_recipes(dry_run):
    training = dry_run["training"]
    assert training["ok"] is True
    runs = training["runs"]
    assert [r["preset"] for r in runs] == list(gpu.PRESETS)
    for run in runs:
        assert run["ok"] and run["device"] == "cpu" and "--dry-run" in run["command"]
        assert "--weights-dir" not in run["command"]  # models/weights is never touched
        card = json.loads((ROOT / "models" / "weights" / f"{run['preset']}.json").read_text())
        assert set(run["final_losses"]) == set(card["final_losses"])
        assert set(training["comparison"][run["preset"]]) == set(card["final_losses"])
    assert training["recipes_wall_s"] > 0 and training["target_s"] == 20
    assert any("dry run" in note for note in training["notes"])


def test_without_wrk_the_single_png_part_is_skipped(monkeypatch):
    monkeypatch.setattr(gpu.shutil, "which", lambda name: None)
    skipped = gpu.single_png_rates({"cpu": "http://127.0.0.1:9"}, 1.0)
    assert "wrk not on PATH" in skipped["skipped"]


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_compare_measures_what_differs():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (28, 28)).astype(np.uint8)
    other = image.copy()
    other[0, :4] = np.clip(other[0, :4].astype(int) + 3, 0, 255)  # 4 pixels off by up to 3
    changed = int(np.sum(other != image))
    same = gpu.compare("image/png", png(image), png(image))
    assert same["byte_identical"] and same["bytes_differing_fraction"] == 0
    diff = gpu.compare("image/png", png(image), png(other))
    assert not diff["byte_identical"]
    assert diff["pixels_differing_fraction"] == pytest.approx(changed / 784)
    assert diff["max_abs_pixel_diff"] == int(np.max(np.abs(other.astype(int) - image.astype(int))))

    stack, stack2 = np.stack([image, image]), np.stack([image, other])
    diff = gpu.compare("application/x-npy", npy(stack), npy(stack2))
    assert diff["bytes_differing_fraction"] > 0 and diff["pixels_differing_fraction"] == pytest.approx(changed / 1568)

    def npz(images, labels):
        buffer = io.BytesIO()
        np.savez(buffer, images=images, labels=np.asarray(labels))
        return buffer.getvalue()
    diff = gpu.compare("application/x-npz", npz(stack, [1, 2]), npz(stack2, [1, 3]))
    assert diff["labels_differing"] == 1 and diff["max_abs_pixel_diff"] > 0

    def tar(images, labels):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for i, (im, label) in enumerate(zip(images, labels)):
                for name, data in ((f"{i:06d}.png", png(im)), (f"{i:06d}.cls", str(label).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()
    diff = gpu.compare("application/x-tar", tar(stack, [4, 5]), tar(stack2, [4, 6]))
    assert diff["labels_differing"] == 1 and diff["pixels_differing_fraction"] == pytest.approx(changed / 1568)

    def answer(im, mu):
        return json.dumps({"images": [{"png_base64": base64.b64encode(png(im)).decode(), "digit": 3}],
                           "mu": mu}).encode()
    diff = gpu.compare("application/json", answer(image, [0.5, 1.0]), answer(other, [0.5, 1.25]))
    assert diff["max_abs_number_diff"] == pytest.approx(0.25)
    assert diff["max_abs_pixel_diff"] > 0


def test_seed_noise_verdict():
    card = {"val_loss": 108.0, "g_last100": 3.0}
    # seed 0 and seed 1 differ by 0.5 and 0.4: tolerance max(3 x spread, 2 % of the card's value)
    verdict = gpu.judge({"val_loss": 109.0, "g_last100": 4.0}, card, {"val_loss": 108.5, "g_last100": 3.6})
    assert verdict["val_loss"]["tolerance"] == pytest.approx(max(1.5, 2.16))
    assert verdict["val_loss"]["within_seed_noise"] is True
    assert verdict["g_last100"]["tolerance"] == pytest.approx(1.2)
    assert verdict["g_last100"]["within_seed_noise"] is True
    far = gpu.judge({"val_loss": 115.0, "g_last100": 5.0}, card, {"val_loss": 115.2, "g_last100": 4.9})
    assert not far["val_loss"]["within_seed_noise"] and not far["g_last100"]["within_seed_noise"]
    floor_only = gpu.judge({"val_loss": 109.0}, card, None)  # no second seed: the 2 % floor alone
    assert floor_only["val_loss"]["seed_spread"] is None and floor_only["val_loss"]["within_seed_noise"]


def test_every_operation_of_the_api_is_called():
    from service.main import create_api
    paths = create_api().openapi()["paths"]
    called = set()
    for _, method, path, *_ in gpu.ENDPOINTS:
        route = path.split("?")[0]
        called.add((method.lower(), "/models/{name}" if route.startswith("/models/") else route))
    operations = {(method, path) for path, ops in paths.items() for method in ops}
    assert operations <= called, operations - called


def test_the_script_runs_the_check_with_the_chosen_interpreter_and_its_arguments(tmp_path):
    """scripts/gpu-check.sh is a thin wrapper: $PYTHON -m scripts.gpu_check with every argument, from the root."""
    stub = tmp_path / "python"
    stub.write_text('#!/usr/bin/env bash\necho "$PWD|$*" > "$(dirname "$0")/called"\n')
    stub.chmod(0o755)
    result = subprocess.run([str(ROOT / "scripts" / "gpu-check.sh"), "--dry-run", "--skip-train"], cwd=tmp_path,
                            env={"PYTHON": str(stub), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "called").read_text().strip() == f"{ROOT}|-m scripts.gpu_check --dry-run --skip-train"
