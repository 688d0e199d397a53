"""Turning a user's device string (`auto|cpu|cuda|cuda:N`) into a torch.device.

Shared by the trainer's --device flag and the service's DIGITGEN_DEVICE; the model modules
themselves never choose a device.
"""
from __future__ import annotations

import re

import torch


class DeviceError(RuntimeError):
    """The requested device is malformed or not present on this machine."""


SYNTAX = re.compile(r"auto|cpu|cuda(?::\d+)?")


def device_syntax(spec: str) -> str:
    """The spec, stripped and in lower case, when it is auto, cpu, cuda or cuda:N; else ValueError."""
    spec = (spec or "auto").strip().lower()
    if not SYNTAX.fullmatch(spec):
        raise ValueError("must be auto, cpu, cuda or cuda:N")
    return spec


def resolve_device(spec: str = "auto") -> torch.device:
    """auto = first visible GPU, else CPU. CUDA_VISIBLE_DEVICES is honoured by torch itself,
    so `cuda:0` is the first *visible* GPU."""
    try:
        spec = device_syntax(spec)
    except ValueError:
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N") from None
    if spec == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} requested but no CUDA GPU is visible "
                          "(check the driver, CUDA_VISIBLE_DEVICES, or the container's GPU reservation)")
    index = int(spec.partition(":")[2] or 0)  # "cuda" is cuda:0
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {spec!r} requested but only {count} GPU(s) are visible")
    return torch.device(f"cuda:{index}")
