"""Digit classifier training: cross-entropy with small random shifts."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from models.classifier import DigitClassifier
from models.shapes import IMAGE_SIZE
from trainer.common import adam, descend, epoch_batches, make_scheduler, seeded_generator, steps_per_epoch, to_unit
from trainer.data import Splits
from trainer.presets import Preset
from trainer.resume import RunState


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image (B, 1, 28, 28) by an integer offset in [-max_shift, max_shift]."""
    if max_shift <= 0:
        return x
    b = x.shape[0]
    shifts = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=generator, device=generator.device).to(x.device)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = shifts.float() * (2 / IMAGE_SIZE)  # affine_grid works in [-1, 1] units
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def accuracy(model: DigitClassifier, images_u8: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(images_u8), batch_size):
        logits = model(to_unit(images_u8[start:start + batch_size]))
        correct += (logits.argmax(1) == labels[start:start + batch_size]).sum().item()
    model.train(was_training)
    return correct / len(images_u8)


def train_classifier(model: DigitClassifier, data: Splits, preset: Preset, device: torch.device,
                     max_steps: int | None = None, progress: bool = True, run_dir: Path | None = None,
                     resume: bool = False) -> dict:
    """Trains in place. With run_dir, the run's state is saved there after every epoch and resume=True
    continues from it."""
    optimizer = adam(model.parameters(), preset.lr, preset.betas)
    total_steps = preset.epochs * steps_per_epoch(len(data.train_images), preset.batch_size, max_steps)
    scheduler = make_scheduler(optimizer, preset.schedule, total_steps)
    g = seeded_generator(preset.seed, device)
    history: dict = {"epoch": [], "train_loss": [], "val_accuracy": []}
    state = None if run_dir is None else RunState(run_dir, preset, modules={"classifier": model},
                                                  optimizers={"classifier": optimizer},
                                                  schedulers={"classifier": scheduler}, generators={"batches": g})
    first_epoch, history = state.resume(history) if state is not None and resume else (1, history)
    for epoch in range(first_epoch, preset.epochs + 1):
        model.train()
        total, count = torch.zeros((), device=device), 0
        bar = epoch_batches(len(data.train_images), preset.batch_size, g, device, name=preset.name, epoch=epoch,
                            epochs=preset.epochs, max_steps=max_steps, progress=progress)
        for step, idx in enumerate(bar):
            x = random_shift(to_unit(data.train_images[idx]), preset.augment_shift, g)
            loss = F.cross_entropy(model(x), data.train_labels[idx])
            descend(loss, optimizer, scheduler)
            total += loss.detach() * len(idx)
            count += len(idx)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        history["epoch"].append(epoch)
        history["train_loss"].append((total / count).item())
        history["val_accuracy"].append(accuracy(model, data.val_images, data.val_labels))
        if progress:
            tqdm.write(f"{preset.name} epoch {epoch}: loss {history['train_loss'][-1]:.4f}  "
                       f"val acc {history['val_accuracy'][-1]:.4f}")
        if state is not None:
            state.save(epoch, history)
    if state is not None:
        history["seconds"] = state.seconds()
    model.eval()
    history["test_accuracy"] = accuracy(model, data.test_images, data.test_labels)
    return history
