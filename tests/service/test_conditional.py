"""digit= on a class-conditional generator: candidates come from the digit's part of the latent space."""
import torch
from torch import nn

from models import Generator, GeneratorConfig
from models.sampling import sample_digit


class _JudgeEverythingAs(nn.Module):
    """A classifier stub that is sure every image is `digit`, and records the batch sizes it saw."""

    def __init__(self, digit: int):
        super().__init__()
        self.digit, self.seen = digit, []

    def forward(self, x):
        self.seen.append(len(x))
        logits = torch.full((len(x), 10), -30.0)
        logits[:, self.digit] = 30.0
        return logits


def _sample(generator, digit, n, seed, judge):
    return sample_digit(generator.eval(), judge, digit, n, seed, max_rounds=3, min_confidence=0.999, device="cpu")


def test_conditional_generator_draws_digit_candidates_from_the_digits_bucket():
    generator = Generator(GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=16, output="tanh",
                                          num_classes=10))
    judge = _JudgeEverythingAs(7)
    latents, images = _sample(generator, 7, 40, 0, judge)
    assert latents.shape == (40, 16) and images.shape == (40, 1, 28, 28) and images.dtype == torch.uint8
    assert (generator.latent_classes(latents) == 7).all()
    assert judge.seen == [60]  # one round of n + n/2 candidates, not the unconditional 12 n
    again, _ = _sample(generator, 7, 40, 0, _JudgeEverythingAs(7))
    assert torch.equal(latents, again)  # same seed, same latents


def test_unconditional_generator_keeps_plain_normal_candidates():
    generator = Generator(GeneratorConfig(latent_dim=4, hidden_dim=16, output="sigmoid"))
    judge = _JudgeEverythingAs(3)
    latents, _ = _sample(generator, 3, 5, 0, judge)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(latents, torch.randn(64, 4, generator=g)[:5]) and judge.seen == [64]
