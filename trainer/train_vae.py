"""VAE training loop (negative ELBO, Bernoulli likelihood, optional KL warm-up)."""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from models.vae import VAE
from trainer import figures
from trainer.common import (adam, descend, epoch_batches, make_scheduler, milestone_epochs, seeded_generator,
                            steps_per_epoch, to_unit)
from trainer.data import Splits
from trainer.presets import Preset
from trainer.resume import RunState


@torch.no_grad()
def evaluate_elbo(model: VAE, images_u8: torch.Tensor, binarize: bool, seed: int = 1234,
                  batch_size: int = 1000) -> float:
    """Mean negative ELBO (nats per image) with one posterior sample; binarisation is seeded so
    the validation figure is comparable across epochs."""
    was_training = model.training
    model.eval()
    g = seeded_generator(seed, images_u8.device)
    total = 0.0
    for start in range(0, len(images_u8), batch_size):
        x = to_unit(images_u8[start:start + batch_size])
        if binarize:
            x = torch.bernoulli(x, generator=g)
        total += model.neg_elbo(x).sum().item()
    model.train(was_training)
    return total / len(images_u8)


def train_vae(model: VAE, data: Splits, preset: Preset, device: torch.device, run_dir: Path,
              max_steps: int | None = None, progress: bool = True, resume: bool = False) -> dict:
    """Trains in place; the run's state is saved in run_dir after every epoch, and resume=True continues from it."""
    optimizer = adam(model.parameters(), preset.lr, preset.betas)
    steps = steps_per_epoch(len(data.train_images), preset.batch_size, max_steps)
    scheduler = make_scheduler(optimizer, preset.schedule, preset.epochs * steps,
                               restart=(preset.restart[0] * steps, preset.restart[1]) if preset.restart else None)
    g = seeded_generator(preset.seed, device)
    milestones = milestone_epochs(preset.epochs)
    fixed = to_unit(data.test_images[:10])
    history: dict = {"epoch": [], "train_loss": [], "val_loss": []}
    warmup_steps = preset.kl_warmup_epochs * steps
    state = RunState(run_dir, preset, modules={"vae": model}, optimizers={"vae": optimizer},
                     schedulers={"vae": scheduler}, generators={"batches": g})
    first_epoch, history = state.resume(history) if resume else (1, history)
    for epoch in range(first_epoch, preset.epochs + 1):
        model.train()
        total, count = torch.zeros((), device=device), 0
        bar = epoch_batches(len(data.train_images), preset.batch_size, g, device, name=preset.name, epoch=epoch,
                            epochs=preset.epochs, max_steps=max_steps, progress=progress)
        for step, idx in enumerate(bar):
            x = to_unit(data.train_images[idx])
            if preset.binarize:
                x = torch.bernoulli(x, generator=g)
            # KL warm-up (Sønderby et al. 2016): the KL's weight rises from 0 to 1 over the first epochs,
            # so the decoder learns to use the latent before the prior pulls the posteriors together
            done = (epoch - 1) * steps + step
            kl_weight = min(1.0, (done + 1) / warmup_steps) if warmup_steps else 1.0
            loss = (model.neg_iwae(x, preset.iw_samples, kl_weight) if preset.iw_samples > 1
                    else model.neg_elbo(x, kl_weight)).mean()
            descend(loss, optimizer, scheduler)
            total += loss.detach() * len(idx)
            count += len(idx)
            if step % 100 == 0:  # .item() syncs the device: only now and then
                bar.set_postfix(loss=f"{loss.item():.2f}")
        train_loss = (total / count).item()
        val_loss = evaluate_elbo(model, data.val_images, preset.binarize)
        history["epoch"].append(epoch)
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        if progress:
            tqdm.write(f"{preset.name} epoch {epoch}: train {train_loss:.2f}  val {val_loss:.2f} nats")
        if epoch in milestones:
            model.eval()
            with torch.no_grad():
                recon = model.decode(model.encode(fixed)[0])
            figures.reconstruction_strip(fixed, recon, run_dir / f"reconstructions_epoch{epoch:03d}.png",
                                         title=f"{preset.name}: originals (top) / reconstructions, epoch {epoch}")
            model.train()
        state.save(epoch, history)
    history["seconds"] = state.seconds()
    model.eval()
    history["test_loss"] = evaluate_elbo(model, data.test_images, preset.binarize)
    figures.vae_loss_curves(history, run_dir / "loss_curves.png", title=preset.name)
    return history
