"""Small digit classifiers. The CNN with its defaults is the bundled judge: the feature space for
FID/KID/IS and the labeller for `digit=`. Its variants (no BatchNorm, an MLP) are the other learners
the utility score trains on synthetic digits (trainer/utility.py)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.shapes import IMAGE_SHAPE, PIXELS


@dataclass
class ClassifierConfig:
    channels: tuple[int, int] = (32, 64)
    feature_dim: int = 128
    dropout: float = 0.25
    num_classes: int = 10
    arch: str = "cnn"  # cnn | mlp
    batchnorm: bool = True  # cnn: BatchNorm after each convolution
    hidden_dims: tuple[int, ...] = ()  # mlp: widths before the feature layer (784 -> *hidden -> feature_dim)


class DigitClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        if config.arch == "cnn":
            c1, c2 = config.channels
            norm = nn.BatchNorm2d if config.batchnorm else (lambda c: nn.Identity())
            self.body = nn.Sequential(
                nn.Conv2d(1, c1, 3, padding=1), norm(c1), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 14
                nn.Conv2d(c1, c2, 3, padding=1), norm(c2), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
                nn.Flatten(),
                nn.Dropout(config.dropout),
                nn.Linear(c2 * 7 * 7, config.feature_dim), nn.ReLU(),
            )
        elif config.arch == "mlp":
            widths = [PIXELS, *config.hidden_dims, config.feature_dim]
            layers: list[nn.Module] = [nn.Flatten()]
            for a, b in zip(widths[:-1], widths[1:]):
                layers += [nn.Linear(a, b), nn.ReLU()]
            self.body = nn.Sequential(*layers)
        else:
            raise ValueError(f"unknown classifier arch {config.arch!r}")
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1] -> penultimate features (B, feature_dim)."""
        return self.body(x.reshape(-1, *IMAGE_SHAPE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 1, 28, 28) in [0, 1] -> logits (B, num_classes)."""
        return self.head(self.features(x))
