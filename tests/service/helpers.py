import io

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE), data[:40]
    return Image.open(io.BytesIO(data)).size


def image_bytes(array: np.ndarray, fmt: str = "PNG", mode: str | None = None, **save_kwargs) -> bytes:
    img = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **save_kwargs)
    return buffer.getvalue()


def digit_like(size: int = 28, invert: bool = False) -> np.ndarray:
    """A white vertical bar on black (roughly a '1'), any size."""
    a = np.zeros((size, size), np.uint8)
    a[size // 5: size - size // 5, size // 2 - max(1, size // 14): size // 2 + max(1, size // 14)] = 255
    return 255 - a if invert else a
