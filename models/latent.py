"""Latent-space helpers shared by the trainer's figures and the service."""
from __future__ import annotations

import torch


def interpolate(z_a: torch.Tensor, z_b: torch.Tensor, steps: int, method: str = "slerp") -> torch.Tensor:
    """Points from z_a to z_b inclusive. z_a, z_b: (D,) -> (steps, D).

    slerp (Shoemake 1985; White 2016 "Sampling Generative Networks") keeps the norm typical
    of a Gaussian latent, where lerp's midpoints fall towards the origin, a low-density region.
    """
    t = torch.linspace(0, 1, steps, device=z_a.device, dtype=z_a.dtype).unsqueeze(1)
    if method == "lerp":
        return (1 - t) * z_a + t * z_b
    if method != "slerp":
        raise ValueError(f"unknown interpolation method {method!r}")
    a_norm, b_norm = z_a.norm(), z_b.norm()
    if a_norm == 0 or b_norm == 0:
        return (1 - t) * z_a + t * z_b
    cos = torch.clamp(torch.dot(z_a / a_norm, z_b / b_norm), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:  # nearly parallel: slerp degenerates to lerp
        return (1 - t) * z_a + t * z_b
    sin = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / sin) * z_a + (torch.sin(t * omega) / sin) * z_b
