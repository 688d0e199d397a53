"""Small CNN digit classifier: the feature space for FID/KID/IS and the judge for `digit=`."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.shapes import IMAGE_SHAPE


@dataclass
class ClassifierConfig:
    channels: tuple[int, int] = (32, 64)
    feature_dim: int = 128
    dropout: float = 0.25
    num_classes: int = 10


class DigitClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 14
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(c2 * 7 * 7, config.feature_dim), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1] -> penultimate features (B, feature_dim)."""
        return self.body(x.reshape(-1, *IMAGE_SHAPE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1] -> logits (B, num_classes)."""
        return self.head(self.features(x))
