"""The GAN loop's speed-ups must not move a bit of the result."""
import tempfile
from pathlib import Path

import pytest
import torch

from models.gan import Discriminator, Generator
from trainer.common import adam, batch_indices, seeded_generator, to_unit
from trainer.data import synthetic_mnist
from trainer.presets import get_preset
from trainer.train_gan import discriminator_losses, generator_loss, train_gan, with_class_prior


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
        z = torch.randn(len(idx), generator.latent_dim, generator=g)
        fake = generator(z)
        real_classes, fake_classes = (data.train_labels[idx], generator.latent_classes(z)) if generator.num_classes \
            else (None, None)
        loss_real, loss_fake = discriminator_losses(preset, discriminator(real, real_classes),
                                                    discriminator(fake.detach(), fake_classes), probabilities)
        opt_d.zero_grad(set_to_none=True)
        (loss_real + loss_fake).backward()
        opt_d.step()
        loss_g = generator_loss(preset, discriminator(fake, fake_classes), probabilities)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return generator, discriminator


@pytest.mark.parametrize("name", ["gan-seed", "gan", "gan-bce"])
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


def test_class_conditional_training_runs_and_learns_the_label_mix():
    preset = get_preset("gan-wide", epochs=1, batch_size=32, snapshot_every=0)
    preset.generator.hidden_dim, preset.discriminator.hidden_dim = 16, 8
    preset.generator.num_classes = preset.discriminator.num_classes = 10
    data = synthetic_mnist(n_train=256, n_test=64)
    preset = with_class_prior(preset, data)
    counts = torch.bincount(data.train_labels.long(), minlength=10).double() + 1
    assert torch.allclose(torch.tensor(preset.generator.class_prior, dtype=torch.float64),
                          counts / counts.sum(), atol=1e-5)
    assert abs(sum(preset.generator.class_prior) - 1) < 1e-9
    torch.manual_seed(0)
    generator, discriminator = Generator(preset.generator), Discriminator(preset.discriminator)
    before = [p.detach().clone() for p in discriminator.parameters()]
    with tempfile.TemporaryDirectory() as run_dir:
        served, history = train_gan(generator, discriminator, data, preset, torch.device("cpu"), Path(run_dir),
                                    max_steps=3, progress=False)
    assert len(history["g"]) == 3 and all(torch.isfinite(torch.tensor(history["g"])))
    assert any(not torch.equal(a, b) for a, b in zip(before, discriminator.parameters()))
    assert served.num_classes == 10


def test_conditional_generator_needs_a_conditional_discriminator():
    preset = get_preset("gan-wide", epochs=1, batch_size=32, snapshot_every=0)
    preset.generator.hidden_dim, preset.discriminator.hidden_dim = 16, 8
    preset.generator.num_classes, preset.discriminator.num_classes = 10, 0
    data = synthetic_mnist(n_train=64, n_test=16)
    with tempfile.TemporaryDirectory() as run_dir, pytest.raises(ValueError, match="both be class-conditional"):
        train_gan(Generator(preset.generator), Discriminator(preset.discriminator), data, preset,
                  torch.device("cpu"), Path(run_dir), max_steps=1, progress=False)


def test_discriminator_learning_rate_can_differ_from_the_generators():
    preset = get_preset("gan-seed", epochs=1, batch_size=32, lr_d=1e-30)  # D all but frozen, G at 2e-4
    data = synthetic_mnist(n_train=64, n_test=16)
    torch.manual_seed(0)
    generator, discriminator = Generator(preset.generator), Discriminator(preset.discriminator)
    g_before = [p.detach().clone() for p in generator.parameters()]
    d_before = [p.detach().clone() for p in discriminator.parameters()]
    with tempfile.TemporaryDirectory() as run_dir:
        train_gan(generator, discriminator, data, preset, torch.device("cpu"), Path(run_dir), max_steps=2,
                  progress=False)
    assert max(float((a - b.detach()).abs().max()) for a, b in zip(d_before, discriminator.parameters())) < 1e-20
    assert max(float((a - b.detach()).abs().max()) for a, b in zip(g_before, generator.parameters())) > 1e-5
