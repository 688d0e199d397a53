"""Distillation: a cheaper generator trained to copy a trained one, latent for latent.

Why copy rather than train a small GAN from scratch: the served generator's cost is its arithmetic,
and a student that maps every N(0, I) latent to (nearly) the teacher's image keeps what users hold on
to: a seed's image, `/decode` and `/interpolate` on the same latents, the class read from z[0]. Each
step draws fresh latents, so the latent space itself is the training set and no batch repeats.

The losses, weighted by the preset:
- pixels (`distill_pixel`): L1 between student and teacher images, in the generators' [-1, 1] range;
- features (`distill_feature`): squared distance between the two images' penultimate features in the
  dataset's bundled classifier, relative to the teacher's features' mean square. That is the network `trainer evaluate` measures FID in, so a run that
  uses it is also checked by measures that share nothing with it (the PCA + 5-NN judge of `digit=`
  and an FID on principal components of raw pixels: trainer/distill_sweep.py);
- adversarial (`distill_adversarial`): gan-wide's hinge loss against a projection discriminator
  trained on real images, for detail a regression loss alone would average away.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from models.classifier import DigitClassifier
from models.gan import Discriminator, Generator
from trainer import figures
from trainer.common import (adam, epoch_batches, finished, load_base, milestone_epochs, record_losses,
                            seeded_generator, to_unit, write_epoch_samples)
from trainer.data import Splits
from trainer.presets import Preset
from trainer.resume import RunState
from trainer.train_gan import discriminator_losses, generator_loss


class DistillError(ValueError):
    """The teacher cannot be distilled into this preset's student (missing, or another latent contract)."""


def load_teacher(preset: Preset, teacher_dir: Path, device: torch.device) -> tuple[Generator, str]:
    """The frozen teacher generator named by the preset, and its weights' SHA-256."""
    loaded = load_base(teacher_dir, preset.teacher, "generator", "teacher", DistillError, device)
    return loaded.module.requires_grad_(False), loaded.sha256


def student_config(preset: Preset, teacher: Generator):
    """The preset's generator with the teacher's latent contract: latent size, classes and their shares."""
    config, taught = preset.generator, teacher.config
    if config.latent_dim != taught.latent_dim or config.num_classes != taught.num_classes:
        raise DistillError(f"student (latent {config.latent_dim}, {config.num_classes} classes) and teacher "
                           f"(latent {taught.latent_dim}, {taught.num_classes} classes) must share the latent")
    if config.output != taught.output:
        raise DistillError(f"student output {config.output!r} differs from the teacher's {taught.output!r}")
    return dataclasses.replace(config, class_prior=taught.class_prior)


def to_unit_range(x: torch.Tensor, output: str) -> torch.Tensor:
    """A generator's raw output -> [0, 1] pixels for the classifier (as Generator.generate, unclamped)."""
    return (x + 1) / 2 if output == "tanh" else x


def train_distill(student: Generator, teacher: Generator, judge: DigitClassifier | None, data: Splits,
                  preset: Preset, device: torch.device, run_dir: Path, max_steps: int | None = None,
                  progress: bool = True, resume: bool = False, teacher_sha256: str = "") -> tuple[Generator, dict]:
    """Trains `student` in place to copy `teacher`; returns the generator to serve (the EMA copy when
    ema_decay > 0) and the history. judge: the classifier for the feature loss (None when unweighted);
    teacher_sha256: the teacher's weights, part of the run's recipe (a resume from another teacher is refused)."""
    adversarial = preset.distill_adversarial > 0
    opt_g = adam(student.parameters(), preset.lr, preset.betas)
    discriminator = Discriminator(preset.discriminator).to(device) if adversarial else None
    opt_d = adam(discriminator.parameters(), preset.lr_d or preset.lr, preset.betas) if adversarial else None
    ema = None
    if preset.ema_decay > 0:
        ema = AveragedModel(student, multi_avg_fn=get_ema_multi_avg_fn(preset.ema_decay), use_buffers=True)
    if judge is not None:
        judge = judge.eval().requires_grad_(False)
    output = student.config.output
    g = seeded_generator(preset.seed, device)
    fixed_z = torch.randn(64, student.latent_dim, generator=seeded_generator(preset.seed + 1, device), device=device)
    milestones = milestone_epochs(preset.epochs)
    keys = ("pixel", "feature", "adversarial")
    history: dict = {**{k: [] for k in keys}, "epoch_end_step": []}
    modules = {"student": student, **({"ema": ema} if ema is not None else {}),
               **({"discriminator": discriminator} if adversarial else {})}
    optimizers = {"student": opt_g, **({"discriminator": opt_d} if adversarial else {})}
    state = RunState(run_dir, preset, modules=modules, optimizers=optimizers, generators={"batches": g})
    state.recipe["teacher_sha256"] = teacher_sha256
    first_epoch, history = state.resume(history) if resume else (1, history)
    zero = torch.zeros((), device=device)
    served = ema.module if ema is not None else student
    for epoch in range(first_epoch, preset.epochs + 1):
        student.train()
        epoch_losses = []
        # an epoch is as many steps as one pass over the training images would be (they feed only D)
        bar = epoch_batches(len(data.train_images), preset.batch_size, g, device, name=preset.name, epoch=epoch,
                            epochs=preset.epochs, max_steps=max_steps, progress=progress)
        for step, idx in enumerate(bar):
            z = torch.randn(len(idx), student.latent_dim, generator=g, device=device)
            with torch.no_grad():
                target = teacher(z)
            fake = student(z)
            classes = student.latent_classes(z) if student.num_classes else None
            if adversarial:
                real = to_unit(data.train_images[idx])
                real = real * 2 - 1 if preset.data_range == "symmetric" else real
                real_classes = data.train_labels[idx] if student.num_classes else None
                loss_real, loss_fake = discriminator_losses(preset, discriminator(real, real_classes),
                                                            discriminator(fake.detach(), classes), False)
                opt_d.zero_grad(set_to_none=True)
                (loss_real + loss_fake).backward()
                opt_d.step()
            pixel = F.l1_loss(fake, target)
            feature = zero
            if judge is not None and preset.distill_feature > 0:
                wanted = judge.features(to_unit_range(target, output))
                # relative to the features' own scale, so its weight reads like the pixel term's
                feature = F.mse_loss(judge.features(to_unit_range(fake, output)), wanted) / wanted.pow(2).mean()
            adv = zero
            if adversarial:
                discriminator.requires_grad_(False)
                adv = generator_loss(preset, discriminator(fake, classes), False)
                discriminator.requires_grad_(True)
            loss = preset.distill_pixel * pixel + preset.distill_feature * feature + preset.distill_adversarial * adv
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            if ema is not None:
                ema.update_parameters(student)
            epoch_losses.append(torch.stack([pixel.detach(), feature.detach(), adv.detach()]))
            if step % 100 == 0:
                bar.set_postfix(pixel=f"{pixel.item():.4f}", feature=f"{feature.item():.4f}")
        mean = record_losses(history, epoch_losses, keys)
        if progress:
            tqdm.write(f"{preset.name} epoch {epoch}: pixel L1 {mean[0]:.4f}  feature {mean[1]:.4f}  "
                       f"adversarial {mean[2]:.3f}")
        if epoch in milestones:
            write_epoch_samples(served, fixed_z, run_dir, preset.name, epoch)
        state.save(epoch, history)
    history["seconds"] = state.seconds()
    figures.distill_loss_curves(history, run_dir / "loss_curves.png", title=preset.name)
    return finished(served, history, keys)
