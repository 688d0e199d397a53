"""Labelled image sets written as they are generated: an .npz (NumPy) or a WebDataset-style .tar.

Both writers take the set in blocks (uint8 images (k, 1, 28, 28), uint8 labels (k,)) and return
the bytes ready to send after each one, so a response of a million images never exists whole in
memory. The formats come from the standard library's writers (zipfile and tarfile in their
streaming modes) and NumPy's own .npy header, so `numpy.load`, `tarfile`, WebDataset and torchdata
read them as they read files they wrote themselves.

npz: two members, `images.npy` (uint8 (n, 28, 28)) then `labels.npy` (uint8 (n,)). The images
stream as they come; the labels (one byte per image) are kept until the images are done.
tar: per item `<key>.png` (the 28x28 PNG) and `<key>.cls` (the label as decimal text), where the
key is the item's index in the whole sequence, zero-padded to six digits (WebDataset groups
consecutive members by key). Members carry no time stamp or owner, so the same items give the
same bytes.
"""
from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
import torch

from models.shapes import IMAGE_SIZE
from service import imaging

NPZ_MEDIA_TYPE = "application/x-npz"
TAR_MEDIA_TYPE = "application/x-tar"


class _Sink(io.RawIOBase):
    """A write-only, unseekable file that collects what is written until `take()`."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


class NpzWriter:
    def __init__(self, n: int):
        self.n = n
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._images = self._zip.open(zipfile.ZipInfo("images.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w",
                                      force_zip64=True)
        self._images.write(_npy_header((n, IMAGE_SIZE, IMAGE_SIZE)))
        self._labels: list[bytes] = []

    def add(self, images_u8: torch.Tensor, labels_u8: torch.Tensor) -> bytes:
        self._images.write(images_u8.contiguous().numpy().tobytes())
        self._labels.append(labels_u8.numpy().tobytes())
        return self._sink.take()

    def abandon(self) -> None:
        """The answer stops half-way (the client went away): drop the archive without finishing it."""
        self._images.close()
        self._zip.close()

    def finish(self) -> bytes:
        self._images.close()
        with self._zip.open(zipfile.ZipInfo("labels.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as labels:
            labels.write(_npy_header((self.n,)))
            labels.write(b"".join(self._labels))
        self._zip.close()
        return self._sink.take()


class TarWriter:
    def __init__(self, first_index: int):
        self._next = first_index
        self._sink = _Sink()
        self._tar = tarfile.open(fileobj=self._sink, mode="w|", format=tarfile.USTAR_FORMAT)

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        self._tar.addfile(info, io.BytesIO(data))

    def add(self, images_u8: torch.Tensor, labels_u8: torch.Tensor) -> bytes:
        for image, label in zip(images_u8, labels_u8.tolist()):
            key = f"{self._next:06d}"
            self._member(f"{key}.png", imaging.encode_png(image))
            self._member(f"{key}.cls", str(label).encode())
            self._next += 1
        return self._sink.take()

    def abandon(self) -> None:
        self._tar.close()

    def finish(self) -> bytes:
        self._tar.close()
        return self._sink.take()


def writer(format: str, n: int, offset: int) -> NpzWriter | TarWriter:
    return NpzWriter(n) if format == "npz" else TarWriter(offset)
