"""Pieces shared by the training loops: batching on the device, pixel scaling, schedules, the optimiser step,
a run's loss history, milestone sample grids and its final losses."""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from tqdm import tqdm

from models.checkpoint import LoadedCheckpoint, load
from trainer import figures


def load_base(folder: Path, name: str, kind: str, role: str, error: type[Exception],
              device: torch.device) -> LoadedCheckpoint:
    """The bundled checkpoint a preset builds on (a distilled gan's teacher, vae-exemplar's vae), in eval
    mode; `error` naming it as `role` when it is missing or not of `kind` (generator | vae)."""
    path = Path(folder) / f"{name}.safetensors"
    if not path.is_file():
        raise error(f"the {role} {name!r} is not in {folder} ({path.name} missing)")
    loaded = load(path, device)
    if loaded.kind != kind:
        raise error(f"the {role} {name!r} is a {loaded.kind}, not a {'VAE' if kind == 'vae' else kind}")
    loaded.module.eval()
    return loaded


def batch_indices(n: int, batch_size: int, generator: torch.Generator, device: torch.device,
                  max_steps: int | None = None) -> Iterator[torch.Tensor]:
    """A fresh permutation each epoch, sliced into batches (the last one may be smaller)."""
    perm = torch.randperm(n, generator=generator, device=generator.device).to(device)
    for i in range(steps_per_epoch(n, batch_size, max_steps)):
        yield perm[i * batch_size:(i + 1) * batch_size]


def to_unit(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 28, 28) -> float (B, 1, 28, 28) in [0, 1]."""
    return images_u8.unsqueeze(1).float().div_(255)


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                   restart: tuple[int, float] | None = None):
    """Per-step schedule; `restart` = (step, factor) for a cosine with one warm restart (see Preset)."""
    if schedule == "cosine" and restart is not None:
        first, factor = int(restart[0]), float(restart[1])
        if not 0 < first < total_steps:
            raise ValueError(f"the restart step {first} must fall inside the run's {total_steps} steps")

        def rate(step: int) -> float:  # the factor on lr; its first cycle is CosineAnnealingLR's closed form
            if step < first:
                return 0.5 * (1 + math.cos(math.pi * step / first))
            return factor * 0.5 * (1 + math.cos(math.pi * (step - first) / (total_steps - first)))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if schedule == "constant":
        return None
    raise ValueError(f"unknown schedule {schedule!r}")


def descend(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler=None) -> None:
    """One optimiser step on `loss` (and one scheduler step, when there is one)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


def milestone_epochs(epochs: int) -> list[int]:
    """Epochs at which figures are written: 1 and every fifth of the run (1,10,20,..,50 for 50)."""
    return sorted({1, *(max(1, round(epochs * k / 5)) for k in range(1, 6))})


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


# "fused": one kernel per step for all parameters (CPU and CUDA), the fastest on the report's small MLPs
# (benchmarks/README.md), with losses equal to the multi-tensor ("foreach") implementation up to float
# rounding order.
# benchmarks/train.py sets "foreach" for its plain-loop baseline and compares the final losses.
ADAM_IMPLEMENTATION = "fused"


def adam(parameters: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    parameters = list(parameters)
    fused = ADAM_IMPLEMENTATION == "fused" and all(p.device.type in ("cpu", "cuda") for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, betas=betas, **({"fused": True} if fused else {"foreach": True}))


def steps_per_epoch(n: int, batch_size: int, max_steps: int | None = None) -> int:
    steps = math.ceil(n / batch_size)
    return steps if max_steps is None else min(steps, max_steps)


def epoch_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device, *, name: str,
                  epoch: int, epochs: int, max_steps: int | None, progress: bool) -> tqdm:
    """One epoch's batch indices behind a tqdm bar (postfix set by the caller now and then)."""
    return tqdm(batch_indices(n, batch_size, generator, device, max_steps),
                total=steps_per_epoch(n, batch_size, max_steps), desc=f"{name} epoch {epoch}/{epochs}",
                disable=not progress, leave=False)


def record_losses(history: dict, epoch_losses: list[torch.Tensor], keys: tuple[str, ...]) -> list[float]:
    """An epoch's per-step losses (each a tensor of len(keys)) appended to the history, with one sync; their
    means."""
    losses = torch.stack(epoch_losses).cpu()
    for i, key in enumerate(keys):
        history[key] += losses[:, i].tolist()
    history["epoch_end_step"].append(len(history[keys[0]]))
    return losses.mean(0).tolist()


def write_epoch_samples(generator, fixed_z: torch.Tensor, run_dir: Path, name: str, epoch: int) -> None:
    """The sample grid of a milestone epoch: the generator in eval mode on the run's fixed latents."""
    generator.eval()
    with torch.no_grad():
        samples = generator.generate(fixed_z)
    figures.sample_grid(samples, run_dir / f"samples_epoch{epoch:03d}.png", title=f"{name}: fixed latents, epoch {epoch}")


def last_steps_mean(history: dict, keys: tuple[str, ...], steps: int = 100) -> dict[str, float]:
    """Each loss's mean over the run's last `steps` steps (the card's final losses)."""
    return {k: float(sum(history[k][-steps:]) / max(1, len(history[k][-steps:]))) for k in keys}


def finished(served: torch.nn.Module, history: dict, keys: tuple[str, ...]) -> tuple[torch.nn.Module, dict]:
    """The model a run serves, in eval mode, and its history with the final losses."""
    served.eval()
    history["final"] = last_steps_mean(history, keys)
    return served, history
