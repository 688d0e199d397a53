"""Labelled image sets written as they are generated, block by block: npz (`images.npy` uint8 (n, 28, 28),
then `labels.npy` uint8 (n,)) or a WebDataset tar (`<index>.png` and `<index>.cls` per item, the index
zero-padded to six digits). The bytes are those of zipfile's and tarfile's own streaming writers, without
time stamps or owners, so the same items give the same bytes."""
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
    """A write-only file that collects what is written until `take()`; unseekable, so zipfile streams (sizes in
    data descriptors) instead of seeking back."""

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


def _write_ustar_headers(into: np.ndarray, names: np.ndarray, size: int) -> None:
    """Fill `into` (k, 512) with tarfile's USTAR header for each name (rows of `names`, uint8 (k, L)) and a
    file of `size` bytes, mode 0644, no owner, time stamp 0: the template tarfile writes, each name put in,
    and its checksum (POSIX ustar: the header's byte sum with the checksum field as spaces) computed again,
    from the template's sum and the names' bytes."""
    info = tarfile.TarInfo(names[0].tobytes().decode())
    info.size, info.mode = size, 0o644
    template = np.frombuffer(info.tobuf(tarfile.USTAR_FORMAT), dtype=np.uint8).copy()
    template[148:156] = ord(" ")
    length = names.shape[1]
    into[:] = template
    into[:, :length] = names
    total = int(template[length:].sum()) + names.sum(axis=1, dtype=np.int64)
    into[:, 148:154] = ((total[:, None] >> (3 * np.arange(5, -1, -1))) & 7) + ord("0")  # "%06o\0 "
    into[:, 154], into[:, 155] = 0, ord(" ")


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


class TarWriter:
    """The archive tarfile's streaming writer ("w|", USTAR) would write for the same members, byte for
    byte, laid out a block of items at a time with NumPy: every item is the same four 512-byte-aligned
    parts (PNG header and data, label header and data), so no per-member Python objects are made."""

    def __init__(self, first_index: int):
        self._next = first_index
        self._written = 0

    def _items(self, images_u8: torch.Tensor, labels_u8: torch.Tensor, first: int) -> bytes:
        """The members of consecutive items whose keys have one length."""
        k = len(labels_u8)
        keys = np.frombuffer(b"".join(b"%06d" % i for i in range(first, first + k)), dtype=np.uint8).reshape(k, -1)
        pngs = imaging.encode_small_pngs(images_u8)
        png_size, cls_size = pngs.shape[1], 1  # a label 0-9 is one decimal digit
        layout = np.cumsum([0, tarfile.BLOCKSIZE, _padded(png_size), tarfile.BLOCKSIZE, _padded(cls_size)])
        out = np.zeros((k, layout[-1]), dtype=np.uint8)
        for start, suffix, size in ((layout[0], b".png", png_size), (layout[2], b".cls", cls_size)):
            names = np.hstack([keys, np.broadcast_to(np.frombuffer(suffix, dtype=np.uint8), (k, len(suffix)))])
            _write_ustar_headers(out[:, start:start + tarfile.BLOCKSIZE], names, size)
        out[:, layout[1]:layout[1] + png_size] = pngs
        out[:, layout[3]] = labels_u8.numpy() + ord("0")
        return out.tobytes()

    def add(self, images_u8: torch.Tensor, labels_u8: torch.Tensor) -> bytes:
        if len(labels_u8) == 0:
            return b""
        if int(labels_u8.min()) < 0 or int(labels_u8.max()) > 9:
            raise ValueError("labels are classes 0-9")
        parts, start = [], 0
        while start < len(labels_u8):  # runs of keys of one length: 999999 | 1000000 splits a block
            first = self._next + start
            stop = min(len(labels_u8), start + max(10 ** len(str(first)), 10 ** 6) - first)
            parts.append(self._items(images_u8[start:stop], labels_u8[start:stop], first))
            start = stop
        self._next += len(labels_u8)
        data = b"".join(parts)
        self._written += len(data)
        return data

    def abandon(self) -> None:
        pass

    def finish(self) -> bytes:
        """The end-of-archive marker (two zero blocks), then zeros to a whole record, as tarfile ends one."""
        end = self._written + 2 * tarfile.BLOCKSIZE
        return bytes(2 * tarfile.BLOCKSIZE + (-end) % tarfile.RECORDSIZE)


def writer(format: str, n: int, offset: int) -> NpzWriter | TarWriter:
    return NpzWriter(n) if format == "npz" else TarWriter(offset)
