import hashlib

import numpy as np
import pytest

from trainer.data import CHECKSUMS, DataError, load_mnist, read_idx, verify, write_idx


def write_tiny_mnist(folder, n_train=24, n_test=6, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, (n_train,), dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, (n_test,), dtype=np.uint8),
    }
    sums = {}
    for name, array in files.items():
        write_idx(folder / (name + (".gz" if compress else "")), array, compress=compress)
        header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
        sums[name] = hashlib.sha256(header + array.tobytes()).hexdigest()
    return files, sums


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_raw_and_gzip(tmp_path, compress):
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    path = tmp_path / ("x.gz" if compress else "x")
    write_idx(path, array, compress=compress)
    assert np.array_equal(read_idx(path), array)


def test_wrong_magic_is_rejected(tmp_path):
    path = tmp_path / "bad"
    path.write_bytes(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc")  # 0x0d = float, not ubyte
    with pytest.raises(DataError, match="bad: not an unsigned-byte IDX file"):
        read_idx(path)


def test_truncated_idx_is_rejected(tmp_path):
    path = tmp_path / "short"
    write_idx(path, np.zeros((3, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="short: IDX says"):
        read_idx(path)


def test_checksums_verified_and_split(tmp_path):
    files, sums = write_tiny_mnist(tmp_path, compress=True)
    data = load_mnist(tmp_path, checksums=sums, train_size=20)
    assert data.train_images.shape == (20, 28, 28) and data.val_images.shape == (4, 28, 28)
    assert data.test_images.shape == (6, 28, 28) and data.test_labels.dtype.is_floating_point is False
    assert np.array_equal(data.val_images.numpy(), files["train-images-idx3-ubyte"][20:])


def test_checksum_mismatch_names_the_file(tmp_path):
    write_tiny_mnist(tmp_path)
    with pytest.raises(DataError) as err:
        verify(tmp_path, CHECKSUMS)  # the real MNIST sums: the random files cannot match
    message = str(err.value)
    assert "train-images-idx3-ubyte" in message and "expected ba891046" in message and "fetch-data" in message


def test_missing_file_says_how_to_get_it(tmp_path):
    _, sums = write_tiny_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte.gz\) is missing.*fetch-data"):
        verify(tmp_path, sums)


# ---- Fashion-MNIST: the Debian package's files -------------------------------------------------

def fake_debian_package(monkeypatch, folder):
    """The package's folder with tiny gzipped IDX files, and FASHION_CHECKSUMS made theirs."""
    from trainer import data
    _, sums = write_tiny_mnist(folder, compress=True, seed=3)
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", folder)
    monkeypatch.setitem(data.SOURCES, "fashion", data.Source(
        data.SOURCES["fashion"].info, sums, data.SOURCES["fashion"].default_dir, data.SOURCES["fashion"].how_to_get))
    monkeypatch.setattr(data, "FASHION_CHECKSUMS", sums)
    return sums


def test_fetch_fashion_copies_the_debian_packages_files_and_verifies_them(tmp_path, monkeypatch):
    from trainer.data import fetch, load_dataset
    fake_debian_package(monkeypatch, tmp_path / "debian")
    paths = fetch(tmp_path / "fashion", dataset="fashion")
    assert sorted(p.name for p in paths.values()) == sorted(f"{n}.gz" for n in CHECKSUMS)
    data = load_dataset("fashion", tmp_path / "fashion")
    assert data.title == "Fashion-MNIST" and data.test_images.shape == (6, 28, 28)


def test_fetch_fashion_without_the_package_names_it(tmp_path, monkeypatch):
    from trainer import data
    monkeypatch.setattr(data, "FASHION_DEBIAN_DIR", tmp_path / "absent")
    monkeypatch.setattr(data.shutil, "which", lambda name: None)  # no apt-get: nothing is installed
    with pytest.raises(DataError) as err:
        data.fetch(tmp_path / "fashion", dataset="fashion")
    assert "dataset-fashion-mnist" in str(err.value) and "--data-dir" in str(err.value)


def test_fashion_files_are_checked_against_fashions_sums(tmp_path):
    from trainer.data import FASHION_CHECKSUMS, load_dataset
    write_tiny_mnist(tmp_path)
    with pytest.raises(DataError, match="not Fashion-MNIST.*fetch-data --dataset fashion"):
        load_dataset("fashion", tmp_path)
    assert FASHION_CHECKSUMS["train-images-idx3-ubyte"].startswith("c59f468a")


def test_an_unknown_dataset_is_refused():
    from trainer.data import load_dataset
    with pytest.raises(DataError, match="unknown dataset 'imagenette'; choose from mnist, fashion"):
        load_dataset("imagenette")
