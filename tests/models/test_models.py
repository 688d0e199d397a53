import pytest
import torch

from models import (ClassifierConfig, DigitClassifier, Discriminator, DiscriminatorConfig, Generator,
                    GeneratorConfig, VAE, VAEConfig, vae_loss)
from models.latent import interpolate


def test_report_vae_architecture_is_exact():
    vae = VAE(VAEConfig())
    shapes = [tuple(p.shape) for p in vae.parameters()]
    # encoder 784-300-32 (mu and logvar of a 16-d latent), decoder 16-300-784
    assert shapes == [(300, 784), (300,), (32, 300), (32,), (300, 16), (300,), (784, 300), (784,)]


def test_vae_shapes_and_range():
    vae = VAE(VAEConfig(latent_dim=16, hidden_dims=(512, 512)))
    x = torch.rand(5, 1, 28, 28)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (5, 16)
    images = vae.decode(mu)
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1
    logits, mu2, _ = vae(x)
    assert logits.shape == (5, 784)


def test_vae_loss_is_non_negative_on_grey_targets():
    torch.manual_seed(0)
    vae = VAE(VAEConfig())
    x = torch.rand(64, 1, 28, 28)
    logits, mu, logvar = vae(x)
    assert vae_loss(logits, x, mu, logvar).item() > 0
    # even a perfect decoder cannot go below the targets' own entropy, which is >= 0
    perfect = torch.logit(x.reshape(64, 784).clamp(1e-6, 1 - 1e-6))
    zeros = torch.zeros(64, 16)
    assert vae_loss(perfect, x, zeros, zeros).item() >= 0


def test_report_gan_architecture_is_exact():
    g = Generator(GeneratorConfig())
    d = Discriminator(DiscriminatorConfig())
    assert [tuple(p.shape) for p in g.parameters()] == [(300, 16), (300,), (784, 300), (784,)]
    assert [tuple(p.shape) for p in d.parameters()] == [(300, 784), (300,), (1, 300), (1,)]
    assert isinstance(d.net[-1], torch.nn.Sigmoid)


def test_generators_and_discriminators_shapes():
    z = torch.randn(3, 16)
    for cfg in (GeneratorConfig(), GeneratorConfig(arch="dcgan", hidden_dim=32, output="tanh")):
        g = Generator(cfg).eval()
        out = g.generate(z)
        assert out.shape == (3, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    for cfg in (DiscriminatorConfig(), DiscriminatorConfig(arch="dcgan", hidden_dim=8, spectral_norm=True, sigmoid=False),
                DiscriminatorConfig(dropout=0.3, activation="leaky_relu", spectral_norm=True)):
        assert Discriminator(cfg)(torch.rand(3, 1, 28, 28)).shape == (3,)


def test_classifier_shapes():
    c = DigitClassifier(ClassifierConfig()).eval()
    x = torch.rand(4, 1, 28, 28)
    assert c.features(x).shape == (4, 128)
    assert c(x).shape == (4, 10)


def test_interpolation_end_points_and_norm():
    torch.manual_seed(0)
    a, b = torch.randn(16), torch.randn(16)
    for method in ("lerp", "slerp"):
        path = interpolate(a, b, 7, method)
        assert path.shape == (7, 16)
        assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    # slerp between equal-norm points keeps the norm; lerp's midpoint shrinks
    b = b / b.norm() * a.norm()
    mid_slerp = interpolate(a, b, 3, "slerp")[1]
    mid_lerp = interpolate(a, b, 3, "lerp")[1]
    assert abs(mid_slerp.norm() - a.norm()) < 1e-4
    assert mid_lerp.norm() < a.norm()


def test_generator_last_layer_inference_path_matches_the_library_kernel():
    from models.gan import ToImage
    torch.manual_seed(0)
    layer = ToImage(32, 1, 4, 2, 1)
    reference = torch.nn.ConvTranspose2d(32, 1, 4, 2, 1)
    reference.load_state_dict(layer.state_dict())  # same keys as the library layer
    x = torch.randn(5, 32, 14, 14)
    with torch.inference_mode():
        fast, slow = layer(x), reference(x)
    assert fast.shape == slow.shape == (5, 1, 28, 28)
    assert torch.allclose(fast, slow, atol=1e-5)
    # training (autograd on) keeps the library kernel: bit-identical, so training numerics do not move
    assert torch.equal(layer(x), reference(x))
    # each row is computed on its own: a batch gives what each image gives alone (batched serving)
    with torch.inference_mode():
        assert torch.equal(torch.cat([layer(x[i:i + 1]) for i in range(5)]), fast)


def test_dcgan_generator_same_images_in_eval_whichever_path():
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=32, output="tanh")).eval()
    z = torch.randn(7, 16)
    with torch.inference_mode():
        fast = g.generate(z)
    with torch.no_grad(), torch.enable_grad():
        slow = g.generate(z).detach()
    assert torch.allclose(fast, slow, atol=1e-5)


def _conditional_generator(prior=()):
    return Generator(GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=16, output="tanh", num_classes=10,
                                     class_prior=prior))


def test_conditional_generator_reads_the_class_from_the_latent_with_the_prior_shares():
    prior = (0.05,) * 9 + (0.55,)
    generator = _conditional_generator(prior)
    z = torch.randn(200_000, 16, generator=torch.Generator().manual_seed(0))
    shares = torch.bincount(generator.latent_classes(z), minlength=10).double() / len(z)
    assert torch.allclose(shares, torch.tensor(prior, dtype=torch.float64), atol=0.004)
    uniform = torch.bincount(_conditional_generator().latent_classes(z), minlength=10).double() / len(z)
    assert torch.allclose(uniform, torch.full((10,), 0.1, dtype=torch.float64), atol=0.004)


def test_conditional_latents_land_in_their_class_and_stay_standard_normal():
    generator = _conditional_generator().eval()
    classes = torch.arange(10).repeat(2000)
    z = generator.latents_for_classes(classes, torch.Generator().manual_seed(1))
    assert torch.equal(generator.latent_classes(z), classes)
    # all classes together: z[:, 0] is N(0, 1) again (mean 0, variance 1), the other coordinates untouched
    assert abs(float(z[:, 0].mean())) < 0.03 and abs(float(z[:, 0].var()) - 1) < 0.05
    with torch.no_grad():
        images = generator.generate(z[:8])
    assert images.shape == (8, 1, 28, 28) and images.min() >= 0 and images.max() <= 1


def test_conditional_generator_class_changes_the_image_and_old_configs_still_load():
    generator = _conditional_generator().eval()
    z = torch.zeros(2, 16)
    z[1, 0] = 2.0  # same latent but for the first coordinate's bucket (class 0 vs class 9)
    assert generator.latent_classes(z).tolist() == [4, 9]  # 0 is the 50 % quantile's edge: bucket 4
    with torch.no_grad():
        a, b = generator(z)
    assert not torch.allclose(a, b)
    # the class edges are derived, not stored: the state dict has the unconditional model's keys
    plain = Generator(GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=16, output="tanh"))
    assert generator.state_dict().keys() == plain.state_dict().keys()


def test_projection_discriminator_needs_classes_and_uses_them():
    config = DiscriminatorConfig(arch="dcgan", hidden_dim=8, activation="leaky_relu", spectral_norm=True,
                                 sigmoid=False, num_classes=10)
    discriminator = Discriminator(config).eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        scores = discriminator(x, torch.tensor([0, 1, 2, 3]))
        other = discriminator(x, torch.tensor([5, 6, 7, 8]))
    assert scores.shape == (4,) and not torch.allclose(scores, other)
    with pytest.raises(ValueError, match="classes"):
        discriminator(x)
    with pytest.raises(ValueError, match="raw scores"):
        Discriminator(DiscriminatorConfig(arch="dcgan", hidden_dim=8, sigmoid=True, num_classes=10))


def test_conditional_generator_rejects_a_bad_prior():
    with pytest.raises(ValueError, match="class_prior"):
        _conditional_generator((0.5, 0.5))


def test_image_shape_has_one_home():
    import models
    from models import gan, shapes, vae
    assert (shapes.IMAGE_SIZE, shapes.IMAGE_SHAPE, shapes.PIXELS) == (28, (1, 28, 28), 784)
    assert models.IMAGE_SHAPE is shapes.IMAGE_SHAPE and vae.PIXELS is gan.PIXELS is shapes.PIXELS


def test_folding_batchnorm_keeps_the_generators_images():
    """fold_batchnorm: the served form of a trained dcgan, without its BatchNorm layers, draws the same
    images within float rounding (and checkpoints it like any generator)."""
    import torch

    from models.gan import Generator, GeneratorConfig, fold_batchnorm
    config = GeneratorConfig(latent_dim=16, arch="dcgan", hidden_dim=16, output="tanh", num_classes=10)
    torch.manual_seed(0)
    generator = Generator(config)
    generator.train()
    with torch.no_grad():  # running statistics that are not the identity, and non-trivial affine parameters
        for _ in range(20):
            generator(torch.randn(64, 16) * 2 + 0.5)
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    generator.eval()
    folded = fold_batchnorm(generator)
    assert not folded.config.batchnorm
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    z = torch.randn(256, 16)
    with torch.no_grad():
        assert torch.allclose(folded.generate(z), generator.generate(z), atol=1e-5)
        assert torch.equal(folded.latent_classes(z), generator.latent_classes(z))
    assert fold_batchnorm(folded) is folded  # nothing left to fold


@pytest.mark.parametrize("output", ["tanh", "sigmoid", "linear"])
def test_generate_is_the_forward_pass_mapped_to_unit_range(output):
    """generate takes shortcuts (sigmoid(2x) for (tanh(x) + 1) / 2, in-place activations): the same
    pixels as the plain formula, within float rounding, and never outside [0, 1]."""
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(latent_dim=8, arch="dcgan", hidden_dim=16, output=output,
                                          num_classes=10)).eval()
    z = 3 * torch.randn(64, 8)
    with torch.no_grad():
        x = generator(z)
        plain = ((x + 1) / 2 if output == "tanh" else x).clamp(0, 1)
        served = generator.generate(z)
    assert served.shape == (64, 1, 28, 28)
    assert torch.allclose(served, plain, atol=1e-6)
    assert served.min() >= 0 and served.max() <= 1
