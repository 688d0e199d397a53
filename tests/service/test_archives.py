"""/dataset's archive writers: the tar is what Python's tarfile writes for the same members, byte for byte."""
import io
import tarfile

import numpy as np
import pytest
import torch

from service import archives, imaging


def tarfile_archive(images, labels, first):
    """The reference: tarfile's streaming writer, one member at a time."""
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.USTAR_FORMAT) as archive:
        for i, (image, label) in enumerate(zip(images, labels.tolist())):
            for name, data in ((f"{first + i:06d}.png", imaging.encode_png(image)),
                               (f"{first + i:06d}.cls", str(label).encode())):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return sink.getvalue()


@pytest.mark.parametrize("first", [0, 1010, 999_990, 123_456_789_012])  # 999,990: keys grow a digit mid-block
def test_the_tar_is_tarfiles_byte_for_byte(first):
    g = torch.Generator().manual_seed(first % 1000)
    images = torch.randint(0, 256, (30, 1, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (30,), dtype=torch.uint8, generator=g)
    writer = archives.TarWriter(first)
    got = writer.add(images[:17], labels[:17]) + writer.add(images[17:], labels[17:]) + writer.finish()
    assert got == tarfile_archive(images, labels, first)
    with tarfile.open(fileobj=io.BytesIO(got)) as archive:  # reading checks every header's checksum
        members = archive.getmembers()
        assert [m.name for m in members[:4]] == [f"{first:06d}.png", f"{first:06d}.cls",
                                                  f"{first + 1:06d}.png", f"{first + 1:06d}.cls"]
        png = archive.extractfile(members[2]).read()
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), images[1, 0].numpy())


def test_a_label_that_is_not_one_digit_is_refused():
    with pytest.raises(ValueError, match="0-9"):
        archives.TarWriter(0).add(torch.zeros(1, 1, 28, 28, dtype=torch.uint8), torch.tensor([10], dtype=torch.uint8))


def test_an_empty_block_adds_nothing():
    writer = archives.TarWriter(5)
    assert writer.add(torch.zeros(0, 1, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.uint8)) == b""
    assert writer.finish() == bytes(tarfile.RECORDSIZE)  # an empty archive, as tarfile writes one
