"""models/sampling.py: seeds, 8-bit quantisation and digit= rejection sampling."""
import pytest
import torch
from torch import nn

from models import Generator, GeneratorConfig
from models.sampling import (DigitNotFound, classify_u8, generate_u8, latents_for_seed, sample_digit,
                             to_uint8)
from models.shapes import IMAGE_SHAPE


class DecileGenerator(nn.Module):
    """An unconditional stand-in: every pixel of an image is (d + 0.5) / 10, d = the decile of z[0]
    under N(0, 1), so the digit an image "shows" is known from its latent."""
    num_classes = 0

    def __init__(self, latent_dim: int = 4):
        super().__init__()
        self.latent_dim = latent_dim

    @staticmethod
    def digit_of(z: torch.Tensor) -> torch.Tensor:
        return (torch.special.ndtr(z[:, 0]) * 10).long().clamp(0, 9)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        shade = (self.digit_of(z).float() + 0.5) / 10
        return shade.view(-1, 1, 1, 1).expand(-1, *IMAGE_SHAPE).clone()


class ShadeClassifier(nn.Module):
    """Reads the digit back from the shade; its confidence is `confidence` for every image."""

    def __init__(self, confidence: float = 1.0):
        super().__init__()
        self.confidence = confidence

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        digits = (x[:, 0, 0, 0] * 10).long().clamp(0, 9)
        probs = torch.full((len(x), 10), (1 - self.confidence) / 9)
        probs[torch.arange(len(x)), digits] = self.confidence
        return probs.log()  # logits whose softmax is probs


class ConstantClassifier(nn.Module):
    def __init__(self, digit: int):
        super().__init__()
        self.digit = digit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.full((len(x), 10), -30.0)
        logits[:, self.digit] = 30.0
        return logits


def test_latents_for_seed_are_deterministic_plain_normal_draws():
    z = latents_for_seed(7, 5, 16)
    assert z.shape == (5, 16) and z.dtype == torch.float32 and z.device.type == "cpu"
    assert torch.equal(z, latents_for_seed(7, 5, 16))
    assert torch.equal(z, torch.randn(5, 16, generator=torch.Generator().manual_seed(7)))
    assert not torch.equal(z, latents_for_seed(8, 5, 16))
    assert torch.equal(latents_for_seed(7, 3, 16), z[:3])  # a prefix of the same stream


def test_to_uint8_rounds_and_clamps():
    x = torch.tensor([-0.5, 0.0, 0.4 / 255, 1.49 / 255, 0.5, 1.0, 1.5]).view(1, 1, 1, 7)
    out = to_uint8(x)
    assert out.dtype == torch.uint8 and out.device.type == "cpu"
    assert out.flatten().tolist() == [0, 0, 0, 1, 128, 255, 255]  # 127.5 rounds half to even
    assert x.flatten()[0] == -0.5  # the input is not modified


def test_generate_u8_is_the_same_in_chunks():
    generator = Generator(GeneratorConfig(latent_dim=8, arch="dcgan", hidden_dim=16, output="tanh")).eval()
    z = latents_for_seed(0, 50, 8)
    whole = generate_u8(generator, z, device="cpu")
    assert whole.shape == (50, *IMAGE_SHAPE) and whole.dtype == torch.uint8
    assert torch.equal(whole, generate_u8(generator, z, device="cpu", chunk=16))


def test_classify_u8():
    images = to_uint8(torch.full((3, *IMAGE_SHAPE), 0.35))
    digits, confidence = classify_u8(ShadeClassifier(0.97), images, device="cpu")
    assert digits.tolist() == [3, 3, 3] and torch.allclose(confidence, torch.full((3,), 0.97))


@pytest.mark.parametrize("digit, n", [(0, 1), (3, 5), (9, 20)])
def test_sample_digit_keeps_only_the_digit(digit, n):
    generator, classifier = DecileGenerator(), ShadeClassifier()
    latents, images = sample_digit(generator, classifier, digit, n, 11, max_rounds=8, min_confidence=0.999,
                                   device="cpu")
    assert latents.shape == (n, 4) and images.shape == (n, *IMAGE_SHAPE) and images.dtype == torch.uint8
    assert (DecileGenerator.digit_of(latents) == digit).all()
    assert torch.equal(images, to_uint8(generator.generate(latents)))
    # the candidates are the seed's stream, max(64, 12 n) a round, kept in order
    candidates = max(64, 12 * n)
    g = torch.Generator().manual_seed(11)
    stream = torch.cat([torch.randn(candidates, 4, generator=g) for _ in range(8)])
    expected = stream[DecileGenerator.digit_of(stream) == digit][:n]
    assert torch.equal(latents, expected)


def test_sample_digit_is_deterministic_per_seed():
    generator, classifier = DecileGenerator(), ShadeClassifier()
    kwargs = dict(max_rounds=8, min_confidence=0.999, device="cpu")
    a = sample_digit(generator, classifier, 4, 6, 1, **kwargs)
    b = sample_digit(generator, classifier, 4, 6, 1, **kwargs)
    c = sample_digit(generator, classifier, 4, 6, 2, **kwargs)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_sample_digit_rejects_unconfident_samples():
    with pytest.raises(DigitNotFound, match=r"model 'tiny' produced only 0 of 2 samples of digit 5 in 128 tries"):
        sample_digit(DecileGenerator(), ShadeClassifier(0.9), 5, 2, 0, max_rounds=2, min_confidence=0.95,
                     device="cpu", name="tiny")
    latents, _ = sample_digit(DecileGenerator(), ShadeClassifier(0.9), 5, 2, 0, max_rounds=2, min_confidence=0.9,
                              device="cpu")
    assert len(latents) == 2


def test_sample_digit_with_a_class_conditional_generator_draws_from_the_digits_bucket():
    generator = Generator(GeneratorConfig(latent_dim=8, arch="dcgan", hidden_dim=16, output="tanh",
                                          num_classes=10)).eval()
    n = 10
    latents, images = sample_digit(generator, ConstantClassifier(6), 6, n, 3, max_rounds=1, min_confidence=0.999,
                                   device="cpu")
    assert (generator.latent_classes(latents) == 6).all()
    # every candidate passes this judge: the first n of one round of max(16, 1.5 n) from the seed's stream
    expected = generator.latents_for_classes(torch.full((max(16, n + n // 2),), 6),
                                             generator=torch.Generator().manual_seed(3))[:n]
    assert torch.equal(latents, expected)
    assert torch.equal(images, generate_u8(generator, latents, device="cpu"))
    with pytest.raises(DigitNotFound):  # a judge that sees another digit in each one
        sample_digit(generator, ConstantClassifier(2), 6, n, 3, max_rounds=3, min_confidence=0.5, device="cpu")
