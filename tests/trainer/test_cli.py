import json
import subprocess
import sys

import pytest
from PIL import Image

from models import BUNDLED_WEIGHTS, load
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
    ("gan-wide", ["loss_curves.png", "samples_epoch001.png", "samples_epoch002.png", "interpolation.png",
                  "digits.png"]),
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
        # every figure is titled with the name the model is served under (its card's name)
        assert Image.open(tmp_path / name).text["Title"].startswith(f"{ckpt.card['name']}: "), name
    assert ckpt.card["name"] == preset
    history = json.loads((tmp_path / "history.json").read_text())
    assert history
    if preset.startswith("gan"):  # class-conditional: the checkpoint carries the training labels' class shares
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


def test_train_bundled_trains_every_bundled_model_in_order(monkeypatch, tmp_path):
    from trainer import cli, data, run
    from trainer.presets import BUNDLED
    trained = []
    monkeypatch.setattr(run, "train_preset", lambda preset, *a, **k: trained.append(preset.name) or
                        {"training": {"seconds": 0}, "final_losses": {}, "weights_sha256": ""})
    monkeypatch.setattr(data, "synthetic_mnist", lambda **k: None)
    args = build_parser().parse_args(["train", "--bundled", "fashion", "--dry-run", "--device", "cpu",
                                      "--weights-dir", str(tmp_path)])
    assert cli.cmd_train(args) == 0 and trained == list(BUNDLED["fashion"])
    with pytest.raises(SystemExit, match="drop --out"):
        cli.cmd_train(build_parser().parse_args(["train", "--bundled", "mnist", "--out", str(tmp_path)]))


def test_bundled_weights_have_one_definition():
    assert BUNDLED_WEIGHTS == ROOT / "models" / "weights"
    parser = build_parser()
    assert parser.parse_args(["evaluate"]).weights_dir == BUNDLED_WEIGHTS
    assert parser.parse_args(["report"]).weights_dir == BUNDLED_WEIGHTS
    assert parser.parse_args(["experiment", "posthoc"]).weights == BUNDLED_WEIGHTS / "gan-wide.safetensors"


def test_experiment_mode_is_positional():
    args = build_parser().parse_args(["experiment", "pilot", "--epochs", "2"])
    assert args.mode == "pilot" and args.epochs == 2 and args.n is None


def imported_packages(path) -> set[str]:
    """The top-level packages a module imports (its import statements, at any depth)."""
    import ast
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


# package -> the project packages it may import: models <- service, trainer; the client stands alone
MAY_IMPORT = {"models": {"models"}, "service": {"models", "service"}, "trainer": {"models", "trainer"},
              "digitgen_client": {"digitgen_client"}}


@pytest.mark.parametrize("package", list(MAY_IMPORT))
def test_no_package_imports_one_above_it(package):
    project = {"models", "service", "trainer", "digitgen_client", "benchmarks", "scripts", "tests"}
    for path in sorted((ROOT / package).rglob("*.py")):
        assert imported_packages(path) & project <= MAY_IMPORT[package], path.relative_to(ROOT)


def test_only_the_cli_deals_with_argparse():
    """Library modules take explicit arguments; argparse stays in trainer/cli.py."""
    for path in sorted((ROOT / "trainer").glob("*.py")):
        assert path.name == "cli.py" or "argparse" not in imported_packages(path), path.name


def test_the_trainer_does_not_load_the_service():
    """The trainer samples through models/ (models.sampling), never through the service package."""
    code = ("import sys, trainer.cli, trainer.evaluate, trainer.experiments, trainer.report, trainer.run; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'service'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_cli_passes_its_flags_to_the_library_functions(monkeypatch, tmp_path):
    """Only the CLI reads argparse flags; the library functions get them as keyword arguments."""
    from pathlib import Path

    from trainer import cli, evaluate, experiments, utility
    calls = {}
    monkeypatch.setattr(evaluate, "run_evaluate", lambda **kw: calls.setdefault("evaluate", kw))
    monkeypatch.setattr(utility, "run_utility", lambda **kw: calls.setdefault("utility", kw))
    monkeypatch.setattr(evaluate, "run_epochs_table", lambda snapshots, **kw: calls.setdefault("epochs", (snapshots, kw)))
    monkeypatch.setattr(experiments, "run_experiment", lambda mode, **kw: calls.setdefault("experiment", (mode, kw)))
    assert cli.main(["evaluate", "--models", "gan", "--n", "50", "--no-card-update", "--digit-check", "0",
                     "--device", "cpu", "--out", str(tmp_path / "m.json")]) == 0
    assert calls["evaluate"] == dict(weights_dir=BUNDLED_WEIGHTS, out=tmp_path / "m.json", n=50, seed=0, device="cpu",
                                     data_dir=None, dataset="mnist", models=["gan"], nll_k=5000, nll_images=None,
                                     update_cards=False, digit_check_per_digit=0)
    assert calls.pop("utility") == dict(weights_dir=BUNDLED_WEIGHTS, out=tmp_path / "m.json", device="cpu",
                                        data_dir=None, dataset="mnist", n=60000, models=["gan"], update_cards=False,
                                        verified=False, fresh_baseline=False, seeds=(1, 2),
                                        learners=("classifier", "cnn-brief", "mlp"), curve_models=(),
                                        curve_sizes=(10000, 60000, 240000, 600000))
    calls.clear()
    assert cli.main(["evaluate", "--utility-only", "--utility-seeds", "3", "--utility-learners", "mlp,cnn-brief",
                     "--curve-models", "vae-exemplar", "--curve-sizes", "100,200"]) == 0
    utility_call = calls.pop("utility")
    assert (utility_call["seeds"], utility_call["learners"]) == ((3,), ("mlp", "cnn-brief"))
    assert (utility_call["curve_models"], utility_call["curve_sizes"]) == (("vae-exemplar",), (100, 200))
    calls.clear()
    assert cli.main(["evaluate", "--utility-only", "--utility-n", "600", "--utility-verified"]) == 0
    assert "evaluate" not in calls and calls.pop("utility")["verified"] is True
    assert cli.main(["evaluate", "--dataset", "fashion", "--utility-n", "0", "--data-dir", str(tmp_path)]) == 0
    fashion = calls.pop("evaluate")
    assert (fashion["dataset"], fashion["out"], fashion["data_dir"]) == (
        "fashion", Path("reports/metrics-fashion.json"), tmp_path)
    assert cli.main(["evaluate", "--utility-n", "0", "--digit-check", "0"]) == 0
    assert "utility" not in calls and "evaluate" in calls
    assert cli.main(["evaluate", "--snapshots", str(tmp_path), "--n", "5000"]) == 0
    assert calls["epochs"] == (tmp_path, dict(weights_dir=BUNDLED_WEIGHTS, out=Path("reports/metrics.json"), n=5000,
                                              seed=0, device="auto", data_dir=None, dataset="mnist"))
    assert cli.main(["experiment", "pilot", "--overrides", '{"gan_loss": "bce"}', "--name", "bce"]) == 0
    assert calls["experiment"] == ("pilot", dict(
        weights_dir=BUNDLED_WEIGHTS, weights=BUNDLED_WEIGHTS / "gan-wide.safetensors", name="bce",
        overrides={"gan_loss": "bce"}, epochs=3, n=None, seed=0, device="auto", data_dir=Path("data/mnist"),
        out=None, max_steps=None))
