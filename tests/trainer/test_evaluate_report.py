import json
import shutil

import torch
from PIL import Image

from models import load
from tests.conftest import BUNDLED, ROOT, write_tiny_weights
from trainer.data import synthetic_mnist
from trainer.evaluate import run_epochs_table, run_evaluate
from trainer.report import write_report


def evaluate_kwargs(tmp_path, weights, **overrides):
    values = dict(device="cpu", weights_dir=weights, n=200, seed=0, models=None, nll_k=20, nll_images=10,
                  out=tmp_path / "reports" / "metrics.json", update_cards=True, digit_check_per_digit=0)
    values.update(overrides)
    return values


def epochs_kwargs(tmp_path, weights, **overrides):
    values = dict(device="cpu", weights_dir=weights, n=200, seed=0, out=tmp_path / "reports" / "gan-wide_epochs.json")
    values.update(overrides)
    return values


def test_evaluate_and_report_end_to_end(tmp_path):
    weights = write_tiny_weights(tmp_path / "weights")
    data = synthetic_mnist(n_train=300, n_test=200)
    results = run_evaluate(**evaluate_kwargs(tmp_path, weights), data=data)
    assert set(results["models"]) == {"vae", "gan"}
    assert {"real train vs test (floor)", "real train blurred, sigma 1 px", "uniform noise (ceiling)",
            "single digit '1' (ceiling)"} == set(results["references"])
    vae = results["models"]["vae"]
    for key in ("fid", "kid", "inception_score", "class_kl_to_uniform", "digits_covered", "test_nll_binarised",
                "test_neg_elbo_grey", "reconstruction_mse_per_pixel"):
        assert key in vae
    # NLL by importance sampling is tighter than (or equal to) the one-sample ELBO on average
    assert vae["test_nll_binarised"] <= vae["test_neg_elbo_binarised"] + 5
    written = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert written["models"]["gan"]["fid"] == results["models"]["gan"]["fid"]
    # metrics land in the model card, and the card still matches its weights
    card = load(weights / "gan.safetensors", require_card=True).card
    assert card["metrics"]["fid"] == results["models"]["gan"]["fid"]

    runs = tmp_path / "runs"
    (runs / "gan").mkdir(parents=True)
    (runs / "gan" / "samples_epoch001.png").write_bytes(b"\x89PNG fake")
    stale = tmp_path / "reports" / "figures" / "gan" / "samples_epoch999.png"  # from an earlier, longer run
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    report = write_report(tmp_path / "reports" / "metrics.json", runs, weights, tmp_path / "reports")
    assert not stale.exists() and (stale.parent / "samples_epoch001.png").exists()
    text = report.read_text()
    assert "| gan |" in text and "real train vs test (floor)" in text
    assert "Targets for the served defaults" in text


def test_epochs_table(tmp_path):
    weights = write_tiny_weights(tmp_path / "weights")
    other = write_tiny_weights(tmp_path / "other", seed=1)
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    (snapshots / "epoch005.safetensors").write_bytes((weights / "gan.safetensors").read_bytes())
    (snapshots / "epoch010.safetensors").write_bytes((other / "gan.safetensors").read_bytes())
    kwargs = epochs_kwargs(tmp_path, weights, out=tmp_path / "epochs.json")
    data = synthetic_mnist(n_train=300, n_test=200)
    rows = run_epochs_table(snapshots, **kwargs, data=data)
    assert [r["epoch"] for r in rows] == [5, 10]
    assert rows[0]["fid"] != rows[1]["fid"]  # different weights
    # a rerun keeps the rows already measured, under their own epochs
    assert run_epochs_table(snapshots, **kwargs, data=data) == rows


def test_class_agreement_has_known_answers():
    import torch
    from models import Generator, GeneratorConfig
    from trainer.evaluate import class_agreement
    generator = Generator(GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=16, output="tanh", num_classes=10))
    latents = torch.randn(5000, 16, generator=torch.Generator().manual_seed(0))
    classes = generator.latent_classes(latents)
    images = torch.zeros(5000, 1, 28, 28)
    images[:, 0, 0, 0] = classes.float()  # a "classifier" that can read the class back from pixel (0, 0)
    oracle = lambda x: torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), 10).float()  # noqa: E731
    always_zero = lambda x: torch.nn.functional.one_hot(torch.zeros(len(x)).long(), 10).float()  # noqa: E731
    assert class_agreement(generator, images, latents, oracle) == 1.0
    assert abs(class_agreement(generator, images, latents, always_zero) - 0.1) < 0.015


def test_an_exemplar_vae_is_evaluated_without_the_costly_nll_and_with_its_class_agreement(tmp_path):
    from models import save
    from tests.conftest import tiny_exemplar_vae
    weights = write_tiny_weights(tmp_path / "weights")
    vae, config = tiny_exemplar_vae()
    save(vae, config, {"preset": "vae-exemplar", "metrics": {}}, weights / "vae-exemplar.safetensors")
    data = synthetic_mnist(n_train=300, n_test=200)
    results = run_evaluate(**evaluate_kwargs(tmp_path, weights, models=["vae-exemplar"], nll_images=None), data=data)
    metrics = results["models"]["vae-exemplar"]
    assert "fid" in metrics and "test_neg_elbo_grey" in metrics and "test_nll_binarised" not in metrics
    assert 0.0 <= metrics["class_agreement"] <= 1.0


def test_epochs_table_of_a_conditional_generator_reports_class_agreement(tmp_path):
    from models import Generator, GeneratorConfig, save
    weights = write_tiny_weights(tmp_path / "weights")
    snapshots = tmp_path / "snapshots"
    config = GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=16, output="tanh", num_classes=10)
    save(Generator(config).eval(), config, None, snapshots / "epoch005.safetensors")
    rows = run_epochs_table(snapshots, **epochs_kwargs(tmp_path, weights),
                            data=synthetic_mnist(n_train=300, n_test=200))
    assert 0 <= rows[0]["class_agreement"] <= 1
    report = write_report(tmp_path / "missing.json", tmp_path / "runs", weights, tmp_path / "reports").read_text()
    assert "class agreement |" in report and f"{100 * rows[0]['class_agreement']:.1f} % |" in report


def test_experiments_pilot_and_posthoc_run_end_to_end(tmp_path):
    from models import Generator, GeneratorConfig, save
    from trainer.experiments import recalibrated, run_experiment
    weights = write_tiny_weights(tmp_path / "weights")
    data = synthetic_mnist(n_train=300, n_test=200)
    config = GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=16, output="tanh")
    save(Generator(config).eval(), config, None, tmp_path / "g.safetensors")
    common = dict(device="cpu", weights_dir=weights, n=200, seed=0, name="tiny", epochs=1, max_steps=2,
                  weights=tmp_path / "g.safetensors")
    rows = run_experiment("posthoc", out=tmp_path / "posthoc.json", **common, data=data)
    assert [r["name"] for r in rows][:3] == ["real train images (reference)", "as trained",
                                             "BatchNorm statistics re-estimated"]
    assert all(0 <= r["share_confidence_below_0.9"] <= 1 for r in rows)
    assert json.loads((tmp_path / "posthoc.json").read_text()) == rows
    pilot = run_experiment("pilot", **common, overrides={
        "gan_loss": "bce", "generator": {"hidden_dim": 16, "num_classes": 10},
        "discriminator": {"hidden_dim": 8, "num_classes": 10, "spectral_norm": False}}, data=data)
    assert pilot[0]["name"] == "tiny (1 epochs, raw generator)" and pilot[0]["fid"] > 0
    # re-estimated BatchNorm statistics are the activations' own: the first BN's running mean moves
    import torch
    generator = Generator(config).eval()
    assert not torch.equal(recalibrated(generator).net[2].running_mean, generator.net[2].running_mean)


def test_digit_check_uses_the_shared_sampler(tmp_path, monkeypatch):
    """evaluate's digit= check draws through models.sampling.sample_digit (the service's sampler, no
    service objects), with the bundled-style generator and classifier and the service's default
    confidence, then scores what it drew with the independent PCA + k-NN judge."""
    import torch

    from models import DigitClassifier, Generator
    from models.sampling import DIGIT_MIN_CONFIDENCE
    from trainer import evaluate
    weights = write_tiny_weights(tmp_path / "weights")
    data = synthetic_mnist(n_train=300, n_test=200)
    calls = []

    def fake_sample_digit(generator, classifier, digit, n, seed, **kwargs):
        calls.append((type(generator), type(classifier), digit, n, seed, kwargs))
        real = data.test_images[data.test_labels == digit][:n]  # real digits: the judge should agree
        return torch.zeros(len(real), generator.latent_dim), real.unsqueeze(1)

    monkeypatch.setattr(evaluate, "sample_digit", fake_sample_digit)
    result = evaluate.digit_check(weights, data, "gan", 4, 7, torch.device("cpu"))
    assert [c[2] for c in calls] == list(range(10)) and [c[4] for c in calls] == [7 + d for d in range(10)]
    assert all(c[:2] == (Generator, DigitClassifier) and c[3] == 4 for c in calls)
    assert calls[0][5] == dict(max_rounds=50, min_confidence=DIGIT_MIN_CONFIDENCE, device=torch.device("cpu"),
                               name="gan")
    assert result["min_confidence"] == DIGIT_MIN_CONFIDENCE and result["samples"] == 40
    assert result["accuracy"] > 0.9  # synthetic digits are easy for the judge


def test_report_without_run_folders_keeps_the_committed_figures(tmp_path):
    """No runs/ (a fresh clone): the report links the figures already under reports/figures and
    comes out byte-identical to the committed one, rather than saying 'No figures'."""
    reports = tmp_path / "reports"
    shutil.copytree(ROOT / "reports", reports)
    committed = (ROOT / "reports" / "REPORT.md").read_bytes()
    path = write_report(reports / "metrics.json", tmp_path / "no-runs", BUNDLED, reports)
    assert path.read_bytes() == committed
    assert "No figures" not in path.read_text()
    for preset in ("vae-seed", "gan-seed", "vae-normal", "vae", "gan-wide", "gan"):
        assert f"](figures/{preset}/loss_curves.png)" in path.read_text()
    # a run folder without figures (say, a crashed run) does not wipe them either
    (tmp_path / "empty-runs" / "gan").mkdir(parents=True)
    write_report(reports / "metrics.json", tmp_path / "empty-runs", BUNDLED, reports)
    assert path.read_bytes() == committed
    assert sorted(p.name for p in (reports / "figures" / "gan").iterdir()) == \
        sorted(p.name for p in (ROOT / "reports" / "figures" / "gan").iterdir())


def test_committed_gan_figures_carry_the_served_name():
    """The served model is `gan` (its card's name); its figures are titled so, not with the name it
    was trained under. The title is in each PNG's "Title" text chunk (trainer/figures.py writes it)."""
    card = json.loads((BUNDLED / "gan.json").read_text())
    figures = sorted((ROOT / "reports" / "figures" / "gan").glob("*.png"))
    assert figures
    for path in figures:
        title = Image.open(path).text.get("Title", "")
        assert title.startswith(f"{card['name']}: "), (path.name, title)


def test_the_blurred_reference_spreads_ink_and_keeps_its_amount():
    from trainer.evaluate import blurred
    dot = torch.zeros(1, 1, 28, 28)
    dot[0, 0, 14, 14] = 1.0
    out = blurred(dot)
    assert abs(out.sum().item() - 1.0) < 0.02  # up to 8-bit rounding
    assert out[0, 0, 14, 14] < 0.2 and out[0, 0, 14, 13] > 0 and out[0, 0, 14, 17] == 0  # 5x5 support
    flat = torch.full((1, 1, 28, 28), 0.5)
    assert torch.allclose(blurred(flat)[0, 0, 2:-2, 2:-2], torch.tensor(0.5), atol=1 / 255)  # flat stays flat


def test_a_vamp_vae_is_evaluated_in_its_run_folder_and_climbs_the_ladder(tmp_path):
    """A run folder holds one model and no classifier: evaluate judges with the bundled one, the NLL
    uses the learned prior, and the report's ladder lists the candidate with what trained it."""
    from models import VAE, VAEConfig, save
    torch.manual_seed(0)
    run = tmp_path / "runs" / "vae-vamp"
    run.mkdir(parents=True)
    config = VAEConfig(latent_dim=4, hidden_dims=(16,), prior="vamp", pseudo_inputs=3)
    card = {"preset": "vae-vamp", "description": "tiny VampPrior VAE", "epochs": 2,
            "training": {"seconds": 120.0, "device": "cpu"}, "metrics": {}}
    save(VAE(config), config, card, run / "vae-vamp.safetensors")
    data = synthetic_mnist(n_train=300, n_test=200)
    ladder = tmp_path / "reports" / "vae_ladder.json"
    results = run_evaluate(**evaluate_kwargs(tmp_path, run, models=["vae-vamp"], out=ladder), data=data)
    vamp = results["models"]["vae-vamp"]
    assert vamp["test_nll_binarised"] <= vamp["test_neg_elbo_binarised"] + 5
    assert vamp["card"]["description"] == "tiny VampPrior VAE" and vamp["card"]["epochs"] == 2
    assert "card" not in load(run / "vae-vamp.safetensors").card["metrics"]  # the summary stays out of the card
    weights = write_tiny_weights(tmp_path / "weights")
    run_evaluate(**evaluate_kwargs(tmp_path, weights), data=data)
    text = write_report(tmp_path / "reports" / "metrics.json", tmp_path / "runs", weights,
                        tmp_path / "reports").read_text()
    ladder_section = text.split("## The VAE ladder")[1]
    assert "| vae-vamp | tiny VampPrior VAE |" in ladder_section and "2 epochs, 2 min on cpu" in ladder_section
    assert "| **vae** (served) |" in ladder_section and "VampPrior (Tomczak & Welling 2018)" in ladder_section
    # 10 test images are not the 10,000 the likelihood target is measured on: not met, whatever the figure
    assert "test NLL ≤ 83 nats on all 10,000 test images" in ladder_section and "| NO |" in ladder_section


def test_the_ladder_ends_with_the_served_vae_and_judges_it_against_the_one_it_replaced():
    """Rungs in order (course recipe, the replaced vae, candidates, the served vae); the targets are the
    served vae's, its reconstructions compared with vae-normal's."""
    from trainer.report import _vae_ladder

    def vae(nll, fid, mse, images=10_000):
        return {"test_nll_binarised": nll, "nll_images": images, "nll_k": 5000, "test_neg_elbo_binarised": nll + 4,
                "fid": fid, "reconstruction_mse_per_pixel": mse}

    metrics = {"models": {"vae-seed": vae(95.3, 305.5, 0.0200, 1000), "vae-normal": vae(87.1, 141.7, 0.0081, 1000),
                          "vae": vae(82.9, 45.0, 0.0090)}}
    ladder = {"models": {"vae-vamp": {**vae(83.7, 44.0, 0.0055), "card": {"description": "candidate"}}}}
    lines = "\n".join(_vae_ladder(metrics, ladder, {}))
    order = [lines.index(f"| {name} |") for name in ("vae-seed", "vae-normal", "vae-vamp")]
    assert order == sorted(order) and lines.index("| **vae** (served) |") > order[-1]
    assert "| vae test NLL ≤ 83 nats on all 10,000 test images, k = 5,000 | 82.90 (10,000 images) | yes |" in lines
    assert "| vae sample FID ≤ 50 | 45.00 | yes |" in lines
    assert "| vae: reconstructions as good as vae-normal's (MSE ≤ 0.0081) | 0.0090 | NO |" in lines
