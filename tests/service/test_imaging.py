import io

import numpy as np
import pytest
import torch
from PIL import Image

from service.imaging import ImageDecodeError, ImageTooLargeError, decode_upload, mnist_normalise
from tests.service.helpers import digit_like, image_bytes

LIMIT = 25_000_000


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(a.shape)
    return (ys * a).sum() / a.sum(), (xs * a).sum() / a.sum()


def test_mnist_normalise_fits_20px_and_centres_mass():
    big = np.zeros((300, 200), np.float32)
    big[20:120, 10:60] = 1.0  # off-centre blob
    out = mnist_normalise(big)
    assert out.shape == (28, 28)
    rows, cols = np.nonzero(out > 0.1)
    assert rows.max() - rows.min() + 1 <= 21 and cols.max() - cols.min() + 1 <= 21
    cy, cx = centre_of_mass(out)
    assert abs(cy - 13.5) < 1 and abs(cx - 13.5) < 1


def test_28x28_input_is_taken_as_is():
    a = digit_like()
    out = decode_upload(image_bytes(a), max_pixels=LIMIT)
    assert torch.equal((out[0] * 255).round().byte(), torch.from_numpy(a))


@pytest.mark.parametrize("data", [
    image_bytes(digit_like(64), "PNG", mode="RGBA"),
    image_bytes(digit_like(64), "JPEG", mode="CMYK"),
    image_bytes(digit_like(64), "GIF"),
    image_bytes(digit_like(64), "BMP"),
    image_bytes(digit_like(64), "WEBP"),
    image_bytes(digit_like(1), "PNG"),
    image_bytes((digit_like(64).astype(np.uint16) * 257), "PNG"),  # 16-bit grey
])
def test_odd_but_legitimate_images_decode(data):
    out = decode_upload(data, max_pixels=LIMIT)
    assert out.shape == (1, 28, 28) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1


def test_16_bit_png_keeps_its_contrast():
    out = decode_upload(image_bytes(digit_like(64).astype(np.uint16) * 257, "PNG"), max_pixels=LIMIT)
    assert out.max() > 0.9 and out[0, 0, 0] == 0


def test_transparent_background_becomes_black():
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere, but only the stroke is opaque
    rgba[10:54, 30:34, 3] = 255
    out = decode_upload(image_bytes(rgba, "PNG"), max_pixels=LIMIT)
    assert out[0, 0, 0] == 0 and out.max() > 0.9


def test_animated_gif_uses_first_frame():
    frames = [Image.fromarray(digit_like(40)), Image.fromarray(np.zeros((40, 40), np.uint8))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    assert decode_upload(buffer.getvalue(), max_pixels=LIMIT).max() > 0.9


@pytest.mark.parametrize("data", [b"", b"hello", b"\x89PNG\r\n\x1a\n\0\0", b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                                  image_bytes(digit_like(64), "PNG")[:60]])
def test_undecodable(data):
    with pytest.raises(ImageDecodeError):
        decode_upload(data, max_pixels=LIMIT)


def test_decompression_bomb_is_refused_before_decoding():
    # a 20000x20000 black PNG compresses to a few KB
    data = image_bytes(np.zeros((20000, 20000), np.uint8), "PNG", optimize=False)
    assert len(data) < 1_000_000
    with pytest.raises(ImageTooLargeError):
        decode_upload(data, max_pixels=LIMIT)


@pytest.mark.parametrize("shape", [(28, 28), (1, 1), (62, 302), (3, 5)])
def test_png_encoder_round_trips_through_pillow(shape):
    from service.imaging import encode_png
    pixels = torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    decoded = Image.open(io.BytesIO(encode_png(pixels.unsqueeze(0))))
    decoded.load()  # verifies the CRCs and the zlib stream
    assert decoded.mode == "L" and decoded.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(decoded), pixels.numpy())


def test_one_digit_is_stored_and_grids_are_compressed():
    import zlib

    from service.imaging import PNG_STORE_MAX_BYTES, images_png

    digits = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    digits[:, :, 8:20, 10:18] = 200  # mostly background, as digits are: deflate would shrink it

    def idat(png: bytes) -> bytes:
        start = png.index(b"IDAT") + 4
        return png[start:start + int.from_bytes(png[start - 8:start - 4], "big")]

    one, grid64 = idat(images_png(digits[:1])), idat(images_png(digits, nrow=8))
    assert 28 * 29 <= PNG_STORE_MAX_BYTES
    assert zlib.decompress(one) == bytes(np.pad(digits[0, 0].numpy(), ((0, 0), (1, 0))))
    assert len(one) > 28 * 29  # stored: the rows plus framing, no deflate
    assert len(grid64) < 0.5 * (242 * 243)  # deflated: far below its raw rows


@pytest.mark.parametrize("n, nrow", [(2, 8), (10, 5), (64, 8), (7, 3), (5, 100)])
def test_grid_matches_torchvision_make_grid(n, nrow):
    from torchvision.utils import make_grid

    from service.imaging import grid
    images = torch.randint(1, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(n))
    assert torch.equal(grid(images, nrow), make_grid(images, nrow=nrow, padding=2, pad_value=0)[:1])


def test_many_small_pngs_at_once_are_the_one_at_a_time_files():
    from service.imaging import encode_png, encode_small_pngs
    images = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8)
    images[0] = 0
    images[1] = 255
    files = encode_small_pngs(images)
    assert all(files[i].tobytes() == encode_png(images[i]) for i in range(40))
    with pytest.raises(ValueError, match="stored"):
        encode_small_pngs(torch.zeros(2, 1, 56, 56, dtype=torch.uint8))  # an enlarged image is compressed
