import json
import subprocess
import sys

import pytest

from models import load
from tests.conftest import ROOT
from trainer.cli import build_parser


def run_trainer(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=240)


def test_help_explains_every_flag():
    result = run_trainer("train", "--help")
    assert result.returncode == 0
    for flag in ("--preset", "--epochs", "--batch-size", "--lr", "--seed", "--device", "--out", "--data-dir",
                 "--dry-run", "--weights-dir"):
        assert flag in result.stdout
    top = run_trainer("--help")
    for command in ("fetch-data", "train", "evaluate", "report"):
        assert command in top.stdout


@pytest.mark.parametrize("preset, figures", [
    ("gan", ["loss_curves.png", "samples_epoch001.png", "samples_epoch002.png", "interpolation.png",
             "digits.png"]),
    ("vae-seed", ["loss_curves.png", "reconstructions_epoch001.png", "reconstructions_epoch002.png",
                  "interpolation.png", "tsne.png"]),
])
def test_dry_run_writes_a_loadable_checkpoint_and_figures(tmp_path, preset, figures):
    result = run_trainer("train", "--preset", preset, "--dry-run", "--no-progress", "--out", str(tmp_path),
                         "--device", "cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    ckpt = load(tmp_path / f"{preset}.safetensors", "cpu", require_card=True)
    assert ckpt.card["preset"] == preset
    assert ckpt.card["weights_sha256"] == ckpt.sha256
    for name in figures:
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000, name
    history = json.loads((tmp_path / "history.json").read_text())
    assert history
    if preset == "gan":  # class-conditional: the checkpoint carries the training labels' class shares
        prior = ckpt.module.config.class_prior
        assert ckpt.module.num_classes == 10 and len(prior) == 10 and abs(sum(prior) - 1) < 1e-9


def test_same_seed_same_run(tmp_path):
    digests = []
    for i in range(2):
        out = tmp_path / str(i)
        result = run_trainer("train", "--preset", "gan-seed", "--dry-run", "--no-progress", "--out", str(out),
                             "--device", "cpu", "--seed", "3")
        assert result.returncode == 0, result.stderr[-2000:]
        digests.append(json.loads((out / "gan-seed.json").read_text())["weights_sha256"])
    assert digests[0] == digests[1]


def test_missing_data_is_a_clear_error(tmp_path):
    result = run_trainer("train", "--preset", "vae", "--data-dir", str(tmp_path), "--device", "cpu")
    assert result.returncode == 2
    assert "train-images-idx3-ubyte" in result.stderr and "fetch-data" in result.stderr
    assert "Traceback" not in result.stderr


def test_parser_rejects_unknown_preset():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--preset", "nope"])
