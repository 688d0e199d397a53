"""Distillation (trainer/train_distill.py): a student learns the bundled teacher's latent -> image map,
keeps its latent contract, and says in its card whom it copies; bad teachers are refused plainly."""
import dataclasses
import json

import pytest
import torch

from models.checkpoint import load, save
from models.gan import Generator, GeneratorConfig
from tests.conftest import BUNDLED
from trainer.cli import main
from trainer.data import synthetic_mnist
from trainer.distill_sweep import run_sweep
from trainer.presets import get_preset
from trainer.run import train_preset
from trainer.train_distill import DistillError

DATA = synthetic_mnist(n_train=256, n_test=64)


def _distance_to_teacher(student: Generator, teacher: Generator) -> float:
    z = torch.randn(256, 16, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return float((student.eval().generate(z) - teacher.eval().generate(z)).abs().mean())


def test_the_student_learns_the_teachers_images_and_keeps_its_latent_contract(tmp_path):
    teacher = load(BUNDLED / "gan-wide.safetensors").module
    # no EMA: after a few dozen steps an average would still be mostly the initial weights
    preset = get_preset("gan", epochs=2, batch_size=32, ema_decay=0.0, lr=2e-3)
    torch.manual_seed(preset.seed)
    untrained = Generator(dataclasses.replace(preset.generator, class_prior=teacher.config.class_prior))
    card = train_preset(preset, DATA, torch.device("cpu"), tmp_path, max_steps=40, progress=False,
                        teacher_dir=BUNDLED)
    student = load(tmp_path / "gan.safetensors").module
    assert _distance_to_teacher(student, teacher) < 0.9 * _distance_to_teacher(untrained, teacher)
    pixel = json.loads((tmp_path / "history.json").read_text())["pixel"]
    assert sum(pixel[-10:]) < 0.97 * sum(pixel[:10])  # falling (deterministic: seeded run)
    # the same classes from the same latents, by construction: the teacher's class shares
    assert student.config.class_prior == teacher.config.class_prior
    z = torch.randn(500, 16)
    assert torch.equal(student.latent_classes(z), teacher.latent_classes(z))
    assert card["distilled_from"] == {"model": "gan-wide",
                                      "weights_sha256": load(BUNDLED / "gan-wide.safetensors").sha256}
    assert card["recipe"]["teacher"] == "gan-wide" and card["config"]["hidden_dim"] == 32
    assert card["config"]["batchnorm"] is False  # served with its BatchNorm folded into the layers


def test_feature_and_adversarial_terms_are_trained_and_recorded(tmp_path):
    preset = get_preset("gan", epochs=1, batch_size=16, distill_adversarial=0.1)
    train_preset(preset, DATA, torch.device("cpu"), tmp_path, max_steps=3, progress=False, teacher_dir=BUNDLED)
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["pixel"]) == 3
    assert all(v > 0 for v in history["feature"]) and all(v != 0 for v in history["adversarial"])


def test_a_teacher_with_another_latent_is_refused(tmp_path):
    other = GeneratorConfig(latent_dim=8, arch="dcgan", hidden_dim=8, output="tanh", num_classes=10)
    save(Generator(other), other, {"preset": "x"}, tmp_path / "gan-wide.safetensors")
    with pytest.raises(DistillError, match="must share the latent"):
        train_preset(get_preset("gan", epochs=1), DATA, torch.device("cpu"), tmp_path / "run", max_steps=1,
                     progress=False, teacher_dir=tmp_path)


def test_a_missing_teacher_is_named(tmp_path):
    with pytest.raises(DistillError, match="teacher 'gan-wide' is not in"):
        train_preset(get_preset("gan", epochs=1), DATA, torch.device("cpu"), tmp_path / "run", max_steps=1,
                     progress=False, teacher_dir=tmp_path)


def test_the_sweep_measures_cost_and_quality_next_to_the_teacher(tmp_path):
    out = tmp_path / "distill.json"
    run_sweep(widths=[8], epochs=1, feature=1.0, adversarial=0.0, n=200, out=out, runs=tmp_path / "runs",
              data=DATA, max_steps=2, device="cpu", cost_rounds=3)
    rows = json.loads(out.read_text())["rows"]
    teacher, student, served = rows
    assert teacher["teacher"] and teacher["hidden_dim"] == 128 and teacher["name"] == "gan-wide (teacher)"
    assert served["served"] and served["name"] == "gan (served)" and served["hidden_dim"] == 32  # the bundled gan
    assert student["hidden_dim"] == 8 and student["train_seconds"] > 0
    # the teacher's transposed convolution alone is 128 * 64 * 16 * 49 multiply-adds per image
    assert teacher["multiply_adds_per_image"] > 128 * 64 * 16 * 49 > student["multiply_adds_per_image"]
    assert all(r["us_per_image"] > 0 and r["fid"] >= 0 and r["pixel_pca_fid"] >= 0 for r in rows)
    assert 0 < student["mean_abs_difference_to_teacher"] <= 255
    assert out.with_suffix(".png").stat().st_size > 0
    # a second sweep reuses the trained student rather than training it again
    mtime = (tmp_path / "runs" / student["name"] / f"{student['name']}.safetensors").stat().st_mtime_ns
    run_sweep(widths=[8], epochs=1, feature=1.0, adversarial=0.0, n=200, out=out, runs=tmp_path / "runs",
              data=DATA, max_steps=2, device="cpu", cost_rounds=3)
    assert (tmp_path / "runs" / student["name"] / f"{student['name']}.safetensors").stat().st_mtime_ns == mtime


def test_train_distills_from_the_bundled_teacher_from_the_command_line(tmp_path, capsys):
    code = main(["train", "--preset", "gan", "--dry-run", "--no-progress", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    card = json.loads((tmp_path / "gan.json").read_text())
    assert card["distilled_from"]["model"] == "gan-wide" and card["family"] == "gan"


def test_a_run_does_not_resume_from_another_teacher(tmp_path):
    """The teacher's weights are part of a distilled run's recipe: a teacher retrained since refuses the resume."""
    from trainer.resume import ResumeError
    config = load(BUNDLED / "gan-wide.safetensors").module.config
    teachers = []
    for seed in (0, 1):
        folder = tmp_path / f"teacher{seed}"
        folder.mkdir()
        torch.manual_seed(seed)
        save(Generator(config).eval(), config, {"preset": "gan-wide"}, folder / "gan-wide.safetensors")
        teachers.append(folder)
    preset = get_preset("gan", epochs=1, batch_size=16, distill_feature=0.0)
    train_preset(preset, DATA, torch.device("cpu"), tmp_path / "run", max_steps=2, progress=False,
                 teacher_dir=teachers[0])
    with pytest.raises(ResumeError, match="teacher_sha256"):
        train_preset(get_preset("gan", epochs=2, batch_size=16, distill_feature=0.0), DATA, torch.device("cpu"),
                     tmp_path / "run", max_steps=2, progress=False, resume=True, teacher_dir=teachers[1])
