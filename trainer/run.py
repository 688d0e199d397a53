"""One training run: build the models from a preset, train, write figures, checkpoint and card."""
from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import time
from pathlib import Path

import torch

from models.checkpoint import load, save
from models.classifier import DigitClassifier
from models.datasets import dataset_named
from models.paths import BUNDLED_WEIGHTS
from models.gan import Discriminator, Generator, fold_batchnorm
from models.latent import interpolate
from models.sampling import seed_latents
from models.vae import VAE
from trainer import figures
from trainer.common import seeded_generator, to_unit
from trainer.data import Splits
from trainer.presets import Preset
from trainer.build_exemplar import build_exemplar_vae, load_base_vae, select_scale
from trainer.train_classifier import train_classifier
from trainer.train_distill import load_teacher, student_config, train_distill
from trainer.train_gan import train_gan, with_class_prior
from trainer.train_vae import train_vae

TSNE_POINTS = 3000  # t-SNE is O(n log n) but slow on 2 cores; 3,000 test points show the structure


def vae_samples(model: VAE, preset: Preset, run_dir: Path, seed: int = 0) -> None:
    """samples.png: 64 draws from the model's prior, as `/sample?model=...&seed=0&n=64` gives them."""
    with torch.no_grad():
        images = model.decode(seed_latents(model, seed, 64).to(next(model.parameters()).device))
    figures.sample_grid(images, run_dir / "samples.png", title=f"{preset.name}: 64 samples (seed {seed})")


def _vae_figures(model: VAE, data: Splits, preset: Preset, run_dir: Path) -> None:
    vae_samples(model, preset, run_dir)
    with torch.no_grad():
        n = min(TSNE_POINTS, len(data.test_images))
        mu, _ = model.encode(to_unit(data.test_images[:n]))
        info = dataset_named(preset.dataset)
        figures.tsne_scatter(mu, data.test_labels[:n], run_dir / "tsne.png",
                             title=f"{preset.name}: t-SNE of test-set latent means ({n} images)", seed=preset.seed,
                             class_names=None if info.key == "mnist" else info.classes)
        pairs_mu, _ = model.encode(to_unit(data.test_images[:10]))
        rows = torch.stack([model.decode(interpolate(pairs_mu[2 * i], pairs_mu[2 * i + 1], 10, "lerp"))
                            for i in range(5)])
    figures.interpolation_strips(rows, run_dir / "interpolation.png",
                                 title=f"{preset.name}: interpolation between encoded test images")


def _gan_figures(generator: Generator, preset: Preset, device: torch.device, run_dir: Path) -> None:
    g = seeded_generator(preset.seed + 2, device)
    z = torch.randn(10, generator.latent_dim, generator=g, device=device)
    with torch.no_grad():
        rows = torch.stack([generator.generate(interpolate(z[2 * i], z[2 * i + 1], 10, "slerp")) for i in range(5)])
    figures.interpolation_strips(rows, run_dir / "interpolation.png",
                                 title=f"{preset.name}: slerp between random latents")
    _class_rows(generator, preset, device, run_dir)


def _class_rows(module: torch.nn.Module, preset: Preset, device: torch.device, run_dir: Path) -> None:
    """digits.png of a class-conditional model: one row per class, latents drawn from each class's part
    of the latent space."""
    if not getattr(module, "num_classes", 0):
        return
    classes = torch.arange(module.num_classes).repeat_interleave(10)
    # a GAN draws its latents on the device; an exemplar VAE's draws are made on the CPU
    stream = seeded_generator(preset.seed + 3, device if hasattr(module, "latent_classes") else torch.device("cpu"))
    with torch.no_grad():
        samples = module.generate(module.latents_for_classes(classes, stream).to(device))
    what = "digit" if preset.dataset == "mnist" else "class"
    figures.sample_grid(samples, run_dir / "digits.png", title=f"{preset.name}: one row per {what}", nrow=10)


def train_preset(preset: Preset, data: Splits, device: torch.device, out_dir: Path,
                 weights_dir: Path | None = None, max_steps: int | None = None, progress: bool = True,
                 resume: bool = False, teacher_dir: Path = BUNDLED_WEIGHTS) -> dict:
    """Returns the model card that was written next to the checkpoint. resume=True continues the run
    saved in out_dir from its last finished epoch (trainer/resume.py). teacher_dir: where a distilled
    preset's teacher generator (and the classifier of its feature loss) are read from."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(preset.seed)
    data = data.to(device)
    started = time.perf_counter()
    distilled_from = built_from = None
    if preset.family == "gan" and preset.teacher:
        teacher, teacher_sha = load_teacher(preset, teacher_dir, device)
        preset = dataclasses.replace(preset, generator=student_config(preset, teacher))
        judge = None
        if preset.distill_feature > 0:
            judge = load(Path(teacher_dir) / f"{dataset_named(preset.dataset).classifier}.safetensors", device).module
        module, history = train_distill(Generator(preset.generator).to(device), teacher, judge, data, preset, device,
                                        out_dir, max_steps, progress, resume, teacher_sha)
        # served without BatchNorm layers (folded into the layers before them): built to be cheap
        module = fold_batchnorm(module)
        config = module.config
        final = {f"{k}_last100": v for k, v in history["final"].items()}
        distilled_from = {"model": preset.teacher, "weights_sha256": teacher_sha}
    elif preset.family == "vae" and preset.teacher:
        base, base_sha = load_base_vae(preset, teacher_dir, device)
        scale, selection = select_scale(base, data, preset, device, progress) if preset.exemplar_scales else (1.0, None)
        module = build_exemplar_vae(base, *data.training_file(), scale)
        preset = dataclasses.replace(preset, vae=module.config)
        config = module.config
        history, final = {}, {}
        built_from = {"model": preset.teacher, "weights_sha256": base_sha, "exemplars": module.config.exemplars,
                      **({"exemplar_scale_selection": selection} if selection else {})}
    elif preset.family == "vae":
        module = VAE(preset.vae).to(device)
        history = train_vae(module, data, preset, device, out_dir, max_steps, progress, resume)
        config = preset.vae
        final = {"train_loss": history["train_loss"][-1], "val_loss": history["val_loss"][-1],
                 "test_loss": history["test_loss"]}
    elif preset.family == "gan":
        preset = with_class_prior(preset, data)
        generator = Generator(preset.generator).to(device)
        discriminator = Discriminator(preset.discriminator).to(device)
        module, history = train_gan(generator, discriminator, data, preset, device, out_dir, max_steps, progress,
                                    resume)
        config = preset.generator
        final = {f"{k}_last100": v for k, v in history["final"].items()}
    elif preset.family == "classifier":
        module = DigitClassifier(preset.classifier).to(device)
        history = train_classifier(module, data, preset, device, max_steps, progress, out_dir, resume)
        config = preset.classifier
        final = {"train_loss": history["train_loss"][-1], "val_accuracy": history["val_accuracy"][-1]}
    else:
        raise ValueError(f"unknown family {preset.family!r}")
    # the loops count every segment of a resumed run; segments: (first epoch, last epoch, seconds) each
    seconds = history.pop("seconds", time.perf_counter() - started)
    segments = history.pop("segments", [])
    module.eval()
    if preset.family == "vae":
        _vae_figures(module, data, preset, out_dir)
        _class_rows(module, preset, device, out_dir)
    elif preset.family == "gan":
        _gan_figures(module, preset, device, out_dir)

    card = {
        "name": preset.name,
        "preset": preset.name,
        "family": preset.family,
        "description": preset.description,
        "recipe": preset.to_dict(),
        "epochs": preset.epochs,
        "seed": preset.seed,
        "data": {
            "dataset": data.title,
            "split": {"train": len(data.train_images), "validation": len(data.val_images),
                      "test": len(data.test_images)},
            "sha256": data.checksums or "synthetic (dry run)",
        },
        "training": {
            "seconds": round(seconds, 1),
            **({"segments": segments} if len(segments) > 1 else {}),
            "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
            "torch": torch.__version__,
            "host": platform.machine(),
            "threads": torch.get_num_threads(),
            "steps_per_epoch_cap": max_steps,
        },
        "final_losses": final,
        **({"distilled_from": distilled_from} if distilled_from else {}),
        **({"built_from": built_from} if built_from else {}),
        "metrics": {},
    }
    if preset.family == "classifier":
        card["metrics"]["test_accuracy"] = history["test_accuracy"]
    (out_dir / "history.json").write_text(json.dumps(history) + "\n")
    path = out_dir / f"{preset.name}.safetensors"
    save(module, config, card, path)
    if weights_dir is not None:
        weights_dir.mkdir(parents=True, exist_ok=True)
        for suffix in (".safetensors", ".json"):
            shutil.copy(path.with_suffix(suffix), weights_dir / f"{preset.name}{suffix}")
    return json.loads(path.with_suffix(".json").read_text())
