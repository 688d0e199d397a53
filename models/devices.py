"""Turning a user's device string (`auto|cpu|cuda|cuda:N`) into a torch.device.

Shared by the trainer's --device flag and the service's DIGITGEN_DEVICE; the model modules
themselves never choose a device.
"""
from __future__ import annotations

import re

import torch


class DeviceError(RuntimeError):
    """The requested device is malformed or not present on this machine."""


def resolve_device(spec: str = "auto") -> torch.device:
    """auto = first visible GPU, else CPU. CUDA_VISIBLE_DEVICES is honoured by torch itself,
    so `cuda:0` is the first *visible* GPU."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not match:
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} requested but no CUDA GPU is visible "
                          "(check the driver, CUDA_VISIBLE_DEVICES, or the container's GPU reservation)")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {spec!r} requested but only {count} GPU(s) are visible")
    return torch.device(f"cuda:{index}")
