"""Verified sequences (models/synthetic.py, verified=True): off-class items drawn again from their own
later rounds until the classifier agrees; everything else exactly as in the plain sequence."""
import torch

from models import Generator, GeneratorConfig
from models import synthetic as dataset


class PixelJudge(torch.nn.Module):
    """A deterministic stand-in classifier: the class of an image is the brightest of ten pixels in
    its middle row, so agreement with the asked class is rare (~1 in 10 for the random test
    generator), to exercise many redraws."""

    def forward(self, x):
        return x.reshape(len(x), -1)[:, 300:310]


def generator():
    torch.manual_seed(0)
    config = GeneratorConfig(latent_dim=4, arch="dcgan", hidden_dim=8, output="tanh", num_classes=10)
    return Generator(config).eval()


def agrees(images, labels):
    verdict = PixelJudge()(images.float().div(255)).argmax(1)
    return verdict == labels.long()


def test_agreeing_items_are_the_plain_sequence_and_the_rest_are_redrawn():
    module, judge = generator(), PixelJudge()
    plain_images, labels = dataset.make(module, 1500, 5)
    images, verified_labels = dataset.make(module, 1500, 5, classifier=judge, verified=True)
    assert torch.equal(verified_labels, labels)  # the classes asked for do not move
    first = agrees(plain_images, labels)
    assert torch.equal(images[first], plain_images[first])
    assert not torch.equal(images[~first], plain_images[~first])
    now = agrees(images, labels)
    # rare agreement per draw (the random generator's draws are not independent of their class, so
    # eight draws give ~40 % rather than the ~57 % of independent 1-in-10 draws)
    assert first.float().mean() < 0.2 and now.float().mean() > 2 * first.float().mean()
    assert now[first].all()


def test_a_verified_slice_is_the_same_items_of_a_bigger_request():
    module, judge = generator(), PixelJudge()
    images, labels = dataset.make(module, 2100, 9, classifier=judge, verified=True, digits=(1, 4))
    for offset, n in [(0, 1), (255, 2), (1000, 100), (1023, 3), (2099, 1)]:
        part, part_labels = dataset.make(module, n, 9, offset=offset, classifier=judge, verified=True, digits=(1, 4))
        assert torch.equal(part, images[offset:offset + n]), (offset, n)
        assert torch.equal(part_labels, labels[offset:offset + n])


def test_a_verified_sequence_needs_a_classifier():
    try:
        dataset.make(generator(), 10, 0, verified=True)
    except ValueError as exc:
        assert "needs a classifier" in str(exc)
    else:
        raise AssertionError("no error")
