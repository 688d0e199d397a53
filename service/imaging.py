"""Everything between bytes and pixel tensors: decoding uploads into MNIST-style 28x28 images,
and encoding uint8 images as PNG, grids, NumPy arrays and base64."""
from __future__ import annotations

import base64
import functools
import io
import math
import struct
import warnings
import zlib

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from models.shapes import IMAGE_SIZE

ALLOWED_FORMATS = {"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageDecodeError(ValueError):
    """The upload is not an image we can read (-> 400)."""


class ImageTooLargeError(ValueError):
    """The decoded image would exceed the pixel limit (-> 413)."""


def _to_grey(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> float32 (H, W) in [0, 1]."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.float32) / 65535.0
    if img.mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float32)
        hi = float(a.max()) if a.size else 1.0
        scale = 65535.0 if hi > 255 else 255.0
        return np.clip(a / scale, 0, 1)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # transparent pixels become background (black, as in MNIST)
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    if img.mode != "L":
        img = img.convert("RGB").convert("L")  # CMYK, YCbCr, P, 1, RGB: all through RGB
    return np.asarray(img, dtype=np.float32) / 255.0


def mnist_normalise(grey: np.ndarray) -> np.ndarray:
    """(H, W) float in [0, 1], white ink on black -> (28, 28) the way MNIST was made: the ink's
    bounding box scaled to fit 20x20 (aspect kept), then placed so that its centre of mass is at
    the centre of a 28x28 field (LeCun et al., the MNIST database description)."""
    ink = grey > 0.1 * max(float(grey.max()), 1e-6)
    if not ink.any():
        return np.asarray(Image.fromarray(grey, mode="F").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR), dtype=np.float32)
    rows, cols = np.nonzero(ink)
    crop = grey[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = crop.shape
    factor = 20.0 / max(h, w)
    new_w, new_h = max(1, round(w * factor)), max(1, round(h * factor))
    small = np.asarray(Image.fromarray(crop, mode="F").resize((new_w, new_h), Image.LANCZOS), dtype=np.float32)
    small = np.clip(small, 0, 1)
    total = small.sum()
    if total <= 0:
        cy, cx = (new_h - 1) / 2, (new_w - 1) / 2
    else:
        ys, xs = np.indices(small.shape)
        cy, cx = (ys * small).sum() / total, (xs * small).sum() / total
    top = int(round(13.5 - cy))
    left = int(round(13.5 - cx))
    top = min(max(top, 0), IMAGE_SIZE - new_h)
    left = min(max(left, 0), IMAGE_SIZE - new_w)
    out = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    out[top:top + new_h, left:left + new_w] = small
    return out


def decode_upload(data: bytes, *, invert: bool = False, max_pixels: int) -> torch.Tensor:
    """Image bytes of any size or mode -> (1, 28, 28) float32 in [0, 1]: 28x28 taken as it is (a /sample PNG),
    anything else MNIST-normalised; an animation's first frame."""
    if not data:
        raise ImageDecodeError("empty upload: no image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_FORMATS:
                raise ImageDecodeError(f"unsupported image format {img.format}; send PNG or JPEG")
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLargeError(f"image is {width}x{height} pixels; the limit is {max_pixels} pixels")
            img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img)
    except (ImageDecodeError, ImageTooLargeError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"image too large to decode safely: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"could not decode the upload as an image ({type(exc).__name__})") from None
    grey = _to_grey(img)
    if invert:
        grey = 1.0 - grey
    if grey.shape != (IMAGE_SIZE, IMAGE_SIZE):
        grey = mnist_normalise(grey)
    return torch.tensor(grey, dtype=torch.float32).unsqueeze(0)  # a copy: Pillow arrays are read-only


def upscale(image: torch.Tensor, scale: int) -> torch.Tensor:
    """(C, H, W) uint8 -> (C, H*scale, W*scale), nearest neighbour so strokes stay crisp."""
    if scale == 1:
        return image
    return image.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)


GRID_GUTTER = 2  # black pixels between (and around) the images of a grid


def grid(images_u8: torch.Tensor, nrow: int, padding: int = GRID_GUTTER) -> torch.Tensor:
    """(N, 1, h, w) uint8 -> (1, H, W) uint8 grid, laid out as torchvision.utils.make_grid(padding=2) does
    (tested against it); torchvision is a training-only dependency."""
    n, _, h, w = images_u8.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    cells = torch.zeros((rows * cols, h + padding, w + padding), dtype=images_u8.dtype)
    cells[:n, padding:, padding:] = images_u8[:, 0]
    body = cells.reshape(rows, cols, h + padding, w + padding).permute(0, 2, 1, 3)
    body = body.reshape(rows * (h + padding), cols * (w + padding))
    out = torch.zeros((1, rows * (h + padding) + padding, cols * (w + padding) + padding), dtype=images_u8.dtype)
    out[0, :-padding, :-padding] = body
    return out


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_IEND = _chunk(b"IEND", b"")
# zlib level 1, not the default 6: CPU is what a busy server lacks, bytes are cheap (benchmarks/README.md)
PNG_ZLIB_LEVEL = 1
# pixel data up to this size is stored, not compressed: a single digit fits one TCP segment either way,
# and deflate cost a fifth of a request's CPU (benchmarks/README.md); grids and enlargements are compressed
PNG_STORE_MAX_BYTES = 1024


def encode_png(image: torch.Tensor) -> bytes:
    """(1, H, W) or (H, W) uint8 -> 8-bit greyscale PNG, written directly (PNG spec 5, 11.2): the hot path of
    /sample, where Pillow's encoder costs more in object set-up than the image (benchmarks/README.md)."""
    pixels = image.reshape(image.shape[-2:]).numpy()
    height, width = pixels.shape
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # a leading 0 per row: filter type "None"
    rows[:, 1:] = pixels
    idat = zlib.compress(rows, 0 if rows.nbytes <= PNG_STORE_MAX_BYTES else PNG_ZLIB_LEVEL)
    return b"".join((_head(width, height), struct.pack(">I", len(idat)), b"IDAT", idat,
                     struct.pack(">I", zlib.crc32(idat, _IDAT_CRC)), _IEND))


def encode_small_pngs(images_u8: torch.Tensor) -> np.ndarray:
    """(k, 1, H, W) uint8 images whose rows are stored uncompressed -> (k, L) uint8, row i exactly
    encode_png(images_u8[i]): /dataset's tar, laid out for all images at once but the two checksums."""
    pixels = images_u8.reshape(-1, *images_u8.shape[-2:]).numpy()
    k, height, width = pixels.shape
    size = height * (width + 1)
    if size > PNG_STORE_MAX_BYTES:
        raise ValueError("encode_small_pngs takes images whose rows are stored, not compressed")
    # the IDAT data: zlib header (deflate, 32 KiB window, no preset dictionary, fastest), one final stored
    # block (RFC 1951 3.2.4: BFINAL=1, BTYPE=00, LEN and its complement, little-endian), Adler-32 (big-endian)
    zlib_head = bytes((0x78, 0x01, 0x01)) + struct.pack("<HH", size, size ^ 0xFFFF)
    idat_len = len(zlib_head) + size + 4
    head = np.frombuffer(_head(width, height) + struct.pack(">I", idat_len) + b"IDAT" + zlib_head, dtype=np.uint8)
    out = np.zeros((k, len(head) + size + 4 + 4 + len(_IEND)), dtype=np.uint8)
    out[:, :len(head)] = head
    body = out[:, len(head):len(head) + size].reshape(k, height, width + 1)
    body[:, :, 1:] = pixels  # a leading 0 per row: filter type "None"
    idat_start = len(head) - len(zlib_head)
    flat, width = memoryview(out).cast("B"), out.shape[1]  # slices of a flat memoryview cost less than rows'
    rows = range(0, k * width, width)
    adler = [zlib.adler32(flat[r + len(head):r + len(head) + size]) for r in rows]
    out[:, len(head) + size:len(head) + size + 4] = np.array(adler, dtype=">u4").view(np.uint8).reshape(k, 4)
    crc = [zlib.crc32(flat[r + idat_start:r + idat_start + idat_len], _IDAT_CRC) for r in rows]
    out[:, idat_start + idat_len:idat_start + idat_len + 4] = np.array(crc, dtype=">u4").view(np.uint8).reshape(k, 4)
    out[:, -len(_IEND):] = np.frombuffer(_IEND, dtype=np.uint8)
    return out


@functools.lru_cache(maxsize=256)
def _head(width: int, height: int) -> bytes:
    """Signature and IHDR chunk: 8-bit, greyscale, no interlace."""
    return PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))


_IDAT_CRC = zlib.crc32(b"IDAT")  # a chunk's CRC covers its type too: crc32(data, crc32(type))


def images_png(images_u8: torch.Tensor, nrow: int = 8, scale: int = 1) -> bytes:
    """One image -> its PNG; several -> one PNG grid."""
    picture = images_u8[0] if images_u8.shape[0] == 1 else grid(images_u8, nrow)
    return encode_png(upscale(picture, scale))


def encode_npy(images_u8: torch.Tensor) -> bytes:
    """(N, 1, 28, 28) uint8 -> .npy bytes of shape (N, 28, 28)."""
    buffer = io.BytesIO()
    np.save(buffer, images_u8.reshape(-1, IMAGE_SIZE, IMAGE_SIZE).numpy(), allow_pickle=False)
    return buffer.getvalue()


def png_base64(image_u8: torch.Tensor, scale: int = 1) -> str:
    return base64.b64encode(encode_png(upscale(image_u8, scale))).decode("ascii")
