"""The image shape every model here reads and writes: MNIST's 28x28 greyscale digits."""
from __future__ import annotations

IMAGE_SIZE = 28
"""Height and width of an image, in pixels."""
IMAGE_SHAPE = (1, IMAGE_SIZE, IMAGE_SIZE)
"""One image as a tensor: (channels, height, width)."""
PIXELS = IMAGE_SIZE * IMAGE_SIZE
"""Pixels per image (784): the width of a flattened image."""
