"""digit= on a class-conditional generator: candidates come from the digit's part of the latent space."""
import torch

from models import Generator, GeneratorConfig
from service.inference import Classified, Inference
from service.registry import ServedModel


class _Counter:
    def labels(self, *_):
        return self

    def inc(self, *_):
        pass


def _inference_judging_everything_as(digit: int, seen: list[int]) -> Inference:
    inference = object.__new__(Inference)  # only what sample_digit uses: no registry, no threads
    inference.digit_max_rounds, inference.digit_min_confidence = 3, 0.999
    inference.metrics = type("M", (), {"images": _Counter()})()

    def classify(images):
        seen.append(len(images))
        return Classified(torch.full((len(images),), digit), torch.ones(len(images)))
    inference.classify = classify
    return inference


def _served(module) -> ServedModel:
    return ServedModel(name="g", kind="generator", module=module.eval(), device=torch.device("cpu"), sha256="",
                       card={}, parameters=0, latent_dim=module.latent_dim)


def test_conditional_generator_draws_digit_candidates_from_the_digits_bucket():
    generator = Generator(GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=16, output="tanh",
                                          num_classes=10))
    seen: list[int] = []
    latents, images = _inference_judging_everything_as(7, seen).sample_digit(_served(generator), 7, n=40, seed=0)
    assert latents.shape == (40, 16) and images.shape == (40, 1, 28, 28) and images.dtype == torch.uint8
    assert (generator.latent_classes(latents) == 7).all()
    assert seen == [60]  # one round of n + n/2 candidates, not the unconditional 12 n
    again, _ = _inference_judging_everything_as(7, []).sample_digit(_served(generator), 7, n=40, seed=0)
    assert torch.equal(latents, again)  # same seed, same latents


def test_unconditional_generator_keeps_plain_normal_candidates():
    generator = Generator(GeneratorConfig(latent_dim=4, hidden_dim=16, output="sigmoid"))
    seen: list[int] = []
    latents, _ = _inference_judging_everything_as(3, seen).sample_digit(_served(generator), 3, n=5, seed=0)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(latents, torch.randn(64, 4, generator=g)[:5]) and seen == [64]
