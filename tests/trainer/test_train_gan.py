"""The GAN loop's speed-ups must not move a bit of the result."""
import tempfile
from pathlib import Path

import pytest
import torch

from models.gan import Discriminator, Generator
from trainer.common import adam, batch_indices, seeded_generator, to_unit
from trainer.data import synthetic_mnist
from trainer.presets import get_preset
from trainer.train_gan import discriminator_losses, generator_loss, train_gan


def plain_loop(preset, data, steps):
    """The textbook loop: D's weight gradients are computed in the G step too (and then thrown away)."""
    torch.manual_seed(preset.seed)
    generator, discriminator = Generator(preset.generator), Discriminator(preset.discriminator)
    opt_g = adam(generator.parameters(), preset.lr, preset.betas)
    opt_d = adam(discriminator.parameters(), preset.lr, preset.betas)
    g = seeded_generator(preset.seed, torch.device("cpu"))
    probabilities = discriminator.config.sigmoid
    for idx in batch_indices(len(data.train_images), preset.batch_size, g, torch.device("cpu"), steps):
        real = to_unit(data.train_images[idx])
        if preset.data_range == "symmetric":
            real = real * 2 - 1
        fake = generator(torch.randn(len(idx), generator.latent_dim, generator=g))
        loss_real, loss_fake = discriminator_losses(preset, discriminator(real), discriminator(fake.detach()),
                                                    probabilities)
        opt_d.zero_grad(set_to_none=True)
        (loss_real + loss_fake).backward()
        opt_d.step()
        loss_g = generator_loss(preset, discriminator(fake), probabilities)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return generator, discriminator


@pytest.mark.parametrize("name", ["gan-seed", "gan"])
def test_training_loop_equals_the_plain_loop_bit_for_bit(name):
    preset = get_preset(name, epochs=1, batch_size=32, ema_decay=0.0, snapshot_every=0)
    if preset.generator.arch == "dcgan":  # small widths keep the test fast; the loop is what is tested
        preset.generator.hidden_dim, preset.discriminator.hidden_dim = 16, 8
    data = synthetic_mnist(n_train=256, n_test=64)
    expected_g, expected_d = plain_loop(preset, data, steps=6)
    torch.manual_seed(preset.seed)
    generator, discriminator = Generator(preset.generator), Discriminator(preset.discriminator)
    with tempfile.TemporaryDirectory() as run_dir:
        train_gan(generator, discriminator, data, preset, torch.device("cpu"), Path(run_dir), max_steps=6,
                  progress=False)
    for got, want in ((generator, expected_g), (discriminator, expected_d)):
        for (key, a), b in zip(got.state_dict().items(), want.state_dict().values()):
            assert torch.equal(a, b), key
    assert all(p.requires_grad for p in discriminator.parameters())  # switched back on after each G step
