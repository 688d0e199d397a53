"""Resumable training runs: after every epoch the whole state of a run is written to its folder, so
`python -m trainer train --resume` continues a stopped run from its last finished epoch with the
same numbers as if it had never stopped.

The state is the modules' and optimisers' state dicts, the schedulers', every random generator the
loop draws from (its seeded batch/noise generator and torch's global ones, CPU and CUDA), the history
so far and the seconds already spent. It is one `resume.pt` per run folder, written with torch.save to a
temporary file and renamed (a kill mid-write leaves the previous epoch's state), and read with
`torch.load(weights_only=True)`: tensors, numbers, strings and containers only, no pickled code.
A run resumes only with the recipe it was started with, which the state records (its prose
description aside), with one exception:
a run whose learning rate is constant may be given another number of epochs, at least the ones it has
finished (`--resume --epochs N`, e.g. to extend a finished run), since nothing done so far depended on
the epoch count; a cosine schedule's every step did, so such a run is refused, with one exception of
its own: a finished cosine run of E epochs continues into the recipe that adds a warm restart at
epoch E (`restart`), whose first E epochs follow the same rates (to rounding: one is computed in
closed form, the other by recursion). (The sample grids of an extended run come at both epoch
counts' milestones.)
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch import nn

from trainer.presets import Preset, with_defaults

STATE_FILE = "resume.pt"


class ResumeError(RuntimeError):
    """The run folder's state cannot be resumed (missing, or made by another recipe)."""


class RunState:
    """What one training loop must save to continue later: pass every stateful object by a name."""

    def __init__(self, run_dir: Path, preset: Preset, *, modules: dict[str, nn.Module],
                 optimizers: dict[str, torch.optim.Optimizer], schedulers: dict | None = None,
                 generators: dict[str, torch.Generator]):
        self.path = Path(run_dir) / STATE_FILE
        self.recipe = preset.to_dict()
        self.modules, self.optimizers = modules, optimizers
        self.schedulers = {k: v for k, v in (schedulers or {}).items() if v is not None}
        self.generators = generators
        self.started = time.perf_counter()
        self.seconds_before = 0.0
        self.first_epoch = 1

    def resume(self, history: dict) -> tuple[int, dict]:
        """Load the saved state into the objects; returns (the first epoch still to run, the history)."""
        if not self.path.is_file():
            raise ResumeError(f"{self.path} does not exist: nothing to resume (train without --resume to start)")
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        saved = with_defaults(state["recipe"])
        # the description is prose about the recipe, not a setting of it
        changed = sorted(k for k in self.recipe if k != "description" and saved.get(k) != self.recipe[k])
        restarting = set(changed) <= {"epochs", "restart"} and self.restarts(saved, state)
        if changed == ["epochs"] and self.extends(state) or restarting:
            changed = []
        if changed:
            raise ResumeError(f"{self.path} was written by another recipe (differs in: {', '.join(changed)}); "
                              "resume with the same options, or start a new run folder")
        for name, module in self.modules.items():
            module.load_state_dict(state["modules"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.schedulers.items():
            if restarting:  # another scheduler class: only the step count carries over
                _continue_at(scheduler, state["schedulers"][name]["last_epoch"])
            else:
                scheduler.load_state_dict(state["schedulers"][name])
        for name, generator in self.generators.items():
            generator.set_state(state["generators"][name])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.seconds_before = state["seconds"]
        self.first_epoch = state["epoch"] + 1
        return self.first_epoch, state["history"]

    def extends(self, state: dict) -> bool:
        """Whether this recipe is the saved one run for more epochs, with nothing done so far changed."""
        return self.recipe["schedule"] == "constant" and self.recipe["epochs"] >= state["epoch"]

    def restarts(self, saved: dict, state: dict) -> bool:
        """Whether this recipe is the saved, finished cosine run continued into a warm restart at its end."""
        restart = self.recipe.get("restart")
        return (self.recipe["schedule"] == saved["schedule"] == "cosine" and saved.get("restart") is None
                and restart is not None and restart[0] == saved["epochs"] == state["epoch"])

    def save(self, epoch: int, history: dict) -> None:
        """The state after `epoch` finished (history must be plain numbers, lists and dicts)."""
        segments = list(history.get("segments", []))
        segment = {"from_epoch": self.first_epoch, "to_epoch": epoch,
                   "seconds": round(time.perf_counter() - self.started, 1)}
        if segments and segments[-1]["from_epoch"] == self.first_epoch:
            segments[-1] = segment
        else:
            segments.append(segment)
        history["segments"] = segments
        state = {
            "recipe": self.recipe, "epoch": epoch, "history": history, "seconds": self.seconds(),
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "generators": {k: g.get_state() for k, g in self.generators.items()},
            "torch_rng": torch.get_rng_state(),
            # the VAE's reparameterisation noise and dropout draw from the global CUDA generator on a GPU
            **({"cuda_rng": torch.cuda.get_rng_state_all()} if torch.cuda.is_initialized() else {}),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".pt.part")
        torch.save(state, partial)
        os.replace(partial, self.path)

    def seconds(self) -> float:
        """Training seconds of the whole run: earlier segments plus this one so far."""
        return self.seconds_before + time.perf_counter() - self.started


def _continue_at(scheduler: torch.optim.lr_scheduler.LambdaLR, step: int) -> None:
    """Puts a LambdaLR at `step` as if it had taken every step so far, its optimiser's rates included."""
    scheduler.last_epoch = step
    for group, base, rate in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * rate(step)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
