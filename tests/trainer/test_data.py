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
