"""Where the bundled weights live: the one definition the trainer and the service both use."""
from __future__ import annotations

from pathlib import Path

BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "weights"
"""models/weights: the checkpoints and model cards shipped with the package (package data)."""
