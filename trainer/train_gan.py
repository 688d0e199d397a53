"""GAN training loop: BCE (the report's) or hinge loss, optional label smoothing and EMA, and
class-conditional models (real images with their labels, fakes with the class their latent asks for)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from models.checkpoint import save
from models.gan import Discriminator, Generator
from trainer import figures
from trainer.common import (adam, epoch_batches, finished, milestone_epochs, record_losses, seeded_generator, to_unit,
                            write_epoch_samples)
from trainer.data import Splits
from trainer.presets import Preset
from trainer.resume import RunState


def discriminator_losses(preset: Preset, d_real: torch.Tensor, d_fake: torch.Tensor,
                         probabilities: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (loss on real, loss on fake) for the discriminator step."""
    if preset.gan_loss == "hinge":  # Lim & Ye 2017; Miyato et al. 2018 (SN-GAN)
        return F.relu(1 - d_real).mean(), F.relu(1 + d_fake).mean()
    bce = F.binary_cross_entropy if probabilities else F.binary_cross_entropy_with_logits
    real_target = torch.full_like(d_real, preset.real_label)  # < 1: one-sided label smoothing
    return bce(d_real, real_target), bce(d_fake, torch.zeros_like(d_fake))


def generator_loss(preset: Preset, d_gen: torch.Tensor, probabilities: bool) -> torch.Tensor:
    if preset.gan_loss == "hinge":
        return -d_gen.mean()
    bce = F.binary_cross_entropy if probabilities else F.binary_cross_entropy_with_logits
    return bce(d_gen, torch.ones_like(d_gen))  # non-saturating loss (Goodfellow et al. 2014)


def with_class_prior(preset: Preset, data: Splits) -> Preset:
    """A class-conditional generator gets the training labels' class shares (add-one smoothed, so no
    class is impossible on a tiny data set): its samples then come in MNIST's own mix of digits."""
    config = preset.generator
    if config is None or not config.num_classes or config.class_prior:
        return preset
    counts = torch.bincount(data.train_labels.long().cpu(), minlength=config.num_classes).double() + 1
    prior = tuple(round(float(v), 6) for v in counts / counts.sum())
    prior = prior[:-1] + (round(1 - sum(prior[:-1]), 6),)  # sums to 1 exactly after rounding
    return dataclasses.replace(preset, generator=dataclasses.replace(config, class_prior=prior))


def train_gan(generator: Generator, discriminator: Discriminator, data: Splits, preset: Preset,
              device: torch.device, run_dir: Path, max_steps: int | None = None,
              progress: bool = True, resume: bool = False) -> tuple[Generator, dict]:
    """Trains in place; returns the generator to serve (the EMA copy when ema_decay > 0).
    The run's state is saved in run_dir after every epoch; resume=True continues from it."""
    opt_g = adam(generator.parameters(), preset.lr, preset.betas)
    opt_d = adam(discriminator.parameters(), preset.lr_d or preset.lr, preset.betas)
    ema = None
    if preset.ema_decay > 0:
        ema = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(preset.ema_decay), use_buffers=True)
    probabilities = discriminator.config.sigmoid
    conditional = generator.num_classes > 0
    if conditional != (discriminator.config.num_classes > 0):
        raise ValueError("generator and discriminator must both be class-conditional, or neither")
    latent_dim = generator.latent_dim
    g = seeded_generator(preset.seed, device)
    fixed_z = torch.randn(64, latent_dim, generator=seeded_generator(preset.seed + 1, device), device=device)
    milestones = milestone_epochs(preset.epochs)
    keys = ("d_real", "d_fake", "g")
    history: dict = {**{k: [] for k in keys}, "epoch_end_step": []}
    state = RunState(run_dir, preset, modules={"generator": generator, "discriminator": discriminator,
                                               **({"ema": ema} if ema is not None else {})},
                     optimizers={"generator": opt_g, "discriminator": opt_d}, generators={"batches": g})
    first_epoch, history = state.resume(history) if resume else (1, history)
    served = ema.module if ema is not None else generator
    for epoch in range(first_epoch, preset.epochs + 1):
        generator.train()
        discriminator.train()
        epoch_losses = []
        bar = epoch_batches(len(data.train_images), preset.batch_size, g, device, name=preset.name, epoch=epoch,
                            epochs=preset.epochs, max_steps=max_steps, progress=progress)
        for step, idx in enumerate(bar):
            real = to_unit(data.train_images[idx])
            real_classes = data.train_labels[idx] if conditional else None
            if preset.data_range == "symmetric":
                real = real * 2 - 1
            z = torch.randn(len(idx), latent_dim, generator=g, device=device)
            fake = generator(z)
            fake_classes = generator.latent_classes(z) if conditional else None
            # discriminator step: fake is detached so G gets no gradient here
            loss_real, loss_fake = discriminator_losses(preset, discriminator(real, real_classes),
                                                        discriminator(fake.detach(), fake_classes), probabilities)
            opt_d.zero_grad(set_to_none=True)
            (loss_real + loss_fake).backward()
            opt_d.step()
            # generator step on the same fake batch, through the updated discriminator; D's own weight
            # gradients are not wanted here (the next D step starts from zero), and skipping them changes
            # G's gradients by not a bit (the saving: benchmarks/README.md)
            discriminator.requires_grad_(False)
            loss_g = generator_loss(preset, discriminator(fake, fake_classes), probabilities)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            discriminator.requires_grad_(True)
            opt_g.step()
            if ema is not None:
                ema.update_parameters(generator)
            epoch_losses.append(torch.stack([loss_real.detach(), loss_fake.detach(), loss_g.detach()]))
            if step % 100 == 0:
                bar.set_postfix(d_real=f"{loss_real.item():.3f}", d_fake=f"{loss_fake.item():.3f}",
                                g=f"{loss_g.item():.3f}")
        mean = record_losses(history, epoch_losses, keys)
        if progress:
            tqdm.write(f"{preset.name} epoch {epoch}: D(real) {mean[0]:.3f}  D(fake) {mean[1]:.3f}  G {mean[2]:.3f}")
        if preset.snapshot_every and epoch % preset.snapshot_every == 0:
            save(served, served.config, None, run_dir / "snapshots" / f"epoch{epoch:03d}.safetensors")
        if epoch in milestones:
            write_epoch_samples(served, fixed_z, run_dir, preset.name, epoch)
        state.save(epoch, history)
    history["seconds"] = state.seconds()
    figures.gan_loss_curves(history, run_dir / "loss_curves.png", title=preset.name)
    return finished(served, history, keys)
