"""VAE variants: convolutional encoder/decoder, the VampPrior's density and draws, the objective."""
import math

import pytest
import torch

from models import VAE, VAEConfig, load, save, vae_loss
from models.sampling import prior_draws, seed_latents
from models.vae import gaussian_log_density

VAMP = VAEConfig(latent_dim=6, hidden_dims=(32,), prior="vamp", pseudo_inputs=5)
CONV = VAEConfig(latent_dim=6, hidden_dims=(32,), encoder="conv", decoder="conv", channels=4)


def test_standard_prior_objective_is_the_report_loss():
    torch.manual_seed(0)
    vae = VAE(VAEConfig())
    x = torch.bernoulli(torch.rand(16, 784))
    torch.manual_seed(1)
    per_example = vae.neg_elbo(x)
    torch.manual_seed(1)
    logits, mu, logvar = vae(x)
    assert per_example.shape == (16,)
    assert per_example.mean().item() == pytest.approx(vae_loss(logits, x, mu, logvar).item(), rel=1e-5)


def test_kl_weight_scales_only_the_kl_term():
    torch.manual_seed(0)
    vae = VAE(VAMP)
    x = torch.bernoulli(torch.rand(8, 784))
    losses = []
    for weight in (0.0, 0.5, 1.0):
        torch.manual_seed(1)  # the same posterior sample each time
        losses.append(vae.neg_elbo(x, weight))
    # linear in the weight: (w=0.5) is the midpoint of (w=0) and (w=1), and the KL part is not zero
    assert torch.allclose(losses[1], (losses[0] + losses[2]) / 2, atol=1e-3)
    assert (losses[2] - losses[0]).abs().max() > 1e-3


def spread(vae: VAE, log_std_shift: float = 0.0) -> VAE:
    """Pseudo-inputs far apart (a fresh model's are all mid-grey, so its components nearly coincide),
    and optionally narrower components, as a trained encoder's are."""
    with torch.no_grad():
        vae.pseudo_inputs.copy_(torch.rand_like(vae.pseudo_inputs))
        last = [m for m in vae.encoder.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.bias[vae.latent_dim:] += 2 * log_std_shift
    return vae


@pytest.mark.parametrize("log_std_shift", [0.0, -4.0])
def test_vamp_log_prior_is_the_mean_of_its_components(log_std_shift):
    torch.manual_seed(0)
    vae = spread(VAE(VAMP), log_std_shift).eval()
    with torch.no_grad():
        mu, logvar = vae.prior_components()
        # points near the components' means, where narrow components dominate the mixture
        z = mu[torch.arange(12) % VAMP.pseudo_inputs] + 0.5 * torch.exp(0.5 * logvar[:1]) * torch.randn(12, VAMP.latent_dim)
        z = z.reshape(3, 4, VAMP.latent_dim)
        brute = (torch.logsumexp(gaussian_log_density(z.double().unsqueeze(-2), mu.double(), logvar.double()), dim=-1)
                 - math.log(VAMP.pseudo_inputs))
        assert mu.shape == (VAMP.pseudo_inputs, VAMP.latent_dim)
        assert torch.allclose(vae.log_prior(z).double(), brute, atol=1e-3)


def test_standard_prior_log_density_and_draws():
    vae = VAE(VAEConfig(latent_dim=3)).eval()
    z = torch.randn(7, 3)
    assert torch.allclose(vae.log_prior(z), gaussian_log_density(z, torch.zeros(3), torch.zeros(3)))
    assert torch.equal(prior_draws(vae, z), z)  # a seed's noise is the latent itself


def test_vamp_draws_pick_components_by_the_noise_and_follow_the_mixture():
    torch.manual_seed(0)
    vae = spread(VAE(VAMP), log_std_shift=-4.0).eval()
    noise = torch.randn(40_000, VAMP.latent_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        z = vae.prior_latents(noise)
        mu, logvar = vae.prior_components()
    assert torch.equal(z, vae.prior_latents(noise))  # a function of the noise alone
    # each draw is its component's mean plus that component's spread times fresh normal noise
    k = (torch.special.ndtr(noise[:, 0].double()) * VAMP.pseudo_inputs).floor().long()
    standardised = (z - mu[k]) / torch.exp(0.5 * logvar[k])
    assert torch.allclose(standardised[:, 1:], noise[:, 1:], atol=1e-4)
    assert abs(standardised[:, 0].mean().item()) < 0.03 and abs(standardised[:, 0].std().item() - 1) < 0.03
    shares = torch.bincount(k, minlength=VAMP.pseudo_inputs).double() / len(k)
    assert torch.allclose(shares, torch.full_like(shares, 1 / VAMP.pseudo_inputs), atol=0.01)
    assert torch.allclose(z.mean(0), mu.mean(0), atol=0.05)
    # the components are apart compared with their width: a wrong index would show above
    assert (mu.std(0) / torch.exp(0.5 * logvar).mean()).min() > 1
    assert not z.requires_grad


def test_vamp_draws_do_not_depend_on_the_precision_the_model_runs_in():
    """Seeds stand for the same latents on every device: the mixture for drawing is computed from a
    float64 CPU copy of the encoder, whatever the model's own device and dtype."""
    torch.manual_seed(0)
    vae = spread(VAE(VAMP)).eval()
    noise = torch.randn(50, VAMP.latent_dim)
    draws = vae.prior_latents(noise)
    assert draws.dtype == torch.float32 and draws.device == noise.device
    assert torch.equal(vae.double().prior_latents(noise), draws)


def test_seed_latents_are_the_same_draws_every_time():
    torch.manual_seed(0)
    vae = spread(VAE(VAMP)).eval()
    a, b = seed_latents(vae, 42, 5), seed_latents(vae, 42, 5)
    assert a.shape == (5, VAMP.latent_dim) and torch.equal(a, b)
    assert not torch.equal(a, seed_latents(vae, 43, 5))


def test_prior_cache_follows_the_weights():
    torch.manual_seed(0)
    vae = VAE(VAMP).eval()
    before = vae.prior_components()[0]
    assert vae.prior_components()[0] is before and not before.requires_grad  # kept, without autograd
    with torch.no_grad():
        vae.pseudo_inputs.add_(0.2)  # as an optimiser step or a load would
    after = vae.prior_components()[0]
    assert not torch.allclose(before, after)
    with torch.no_grad():
        vae.pseudo_inputs.mul_(0.5)
    with torch.inference_mode():  # the mixture first computed where the service computes it
        vae.log_prior(torch.randn(3, VAMP.latent_dim))
    z = torch.randn(4, VAMP.latent_dim, requires_grad=True)
    vae.log_prior(z).sum().backward()  # cached components are plain tensors: autograd through z works
    assert z.grad is not None and torch.isfinite(z.grad).all()
    vae.train()
    assert vae.prior_components()[0].requires_grad  # training: recomputed, with gradients
    # a fused optimiser step changes the weights without bumping their versions: the switch back to
    # eval mode is what drops the cached mixture
    stale = vae.eval().prior_components()[0]
    vae.train()
    optimizer = torch.optim.Adam(vae.parameters(), lr=0.1, fused=True)
    vae.neg_elbo(torch.bernoulli(torch.rand(8, 784))).mean().backward()
    optimizer.step()
    assert not torch.allclose(vae.eval().prior_components()[0], stale)


def test_conv_vae_shapes_and_fast_decoder_path():
    torch.manual_seed(0)
    vae = VAE(CONV).eval()
    x = torch.rand(3, 1, 28, 28)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (3, 6)
    with torch.no_grad():  # the CPU inference path of the last layer (matmul + fold)
        fast = vae.decode_logits(mu)
    slow = vae.decode_logits(mu)  # autograd on: the library's transposed convolution
    assert fast.shape == (3, 784) and torch.allclose(fast, slow, atol=1e-5)
    assert vae.decode(mu).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("config", [VAMP, CONV])
def test_new_vae_configs_round_trip_through_checkpoints(tmp_path, config):
    torch.manual_seed(0)
    vae = VAE(config).eval()
    save(vae, config, None, tmp_path / "v.safetensors")
    loaded = load(tmp_path / "v.safetensors").module
    assert loaded.config == config
    z = torch.randn(4, config.latent_dim)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z), vae.decode(z))
        assert torch.equal(prior_draws(loaded, z), prior_draws(vae, z))


def test_bad_vae_configs_are_refused():
    with pytest.raises(ValueError, match="pseudo_inputs"):
        VAE(VAEConfig(prior="vamp"))
    with pytest.raises(ValueError, match="prior"):
        VAE(VAEConfig(prior="flow"))
    with pytest.raises(ValueError, match="encoder"):
        VAE(VAEConfig(encoder="transformer"))


@pytest.mark.parametrize("config", [VAEConfig(latent_dim=6, hidden_dims=(32,)), VAMP])
def test_importance_weighted_bound_is_tighter_than_the_elbo(config):
    torch.manual_seed(0)
    vae = VAE(config)
    x = torch.bernoulli(torch.rand(32, 784))
    with torch.no_grad():
        elbo = torch.stack([vae.neg_iwae(x, 1) for _ in range(20)]).mean(0)  # one sample: the ELBO
        iwae = torch.stack([vae.neg_iwae(x, 50) for _ in range(20)]).mean(0)
        analytic = torch.stack([vae.neg_elbo(x) for _ in range(20)]).mean(0)
    assert iwae.shape == (32,)
    assert (iwae < elbo).float().mean() > 0.9  # log p(x) >= IWAE_k >= ELBO, per image
    assert torch.allclose(elbo.mean(), analytic.mean(), rtol=0.02)  # the same objective at k = 1


def test_digit_sampling_and_datasets_draw_from_the_learned_prior():
    """digit= candidates and /dataset blocks of a VampPrior VAE are prior draws of the same noise
    streams a standard-prior model uses as its latents."""
    from torch import nn

    from models.synthetic import BLOCK, block_generator, block_latents
    from models.sampling import sample_digit

    class SureItIsSeven(nn.Module):
        def forward(self, x):
            logits = torch.full((len(x), 10), -30.0)
            logits[:, 7] = 30.0
            return logits

    torch.manual_seed(0)
    vae = spread(VAE(VAMP)).eval()
    latents, labels = block_latents(vae, seed=5, block=0)
    noise = torch.randn(BLOCK, VAMP.latent_dim, generator=block_generator(5, 0))
    assert labels is None and torch.equal(latents, prior_draws(vae, noise))
    kept, images = sample_digit(vae, SureItIsSeven(), 7, 10, seed=3, max_rounds=1, min_confidence=0.9,
                                device="cpu")
    first = torch.randn(max(64, 12 * 10), VAMP.latent_dim, generator=torch.Generator().manual_seed(3))  # round 1
    assert torch.equal(kept, prior_draws(vae, first)[:10]) and images.shape == (10, 1, 28, 28)


def exemplar_vae(per_class: int = 3, spread_: float = 0.001, scale: float = 1.0) -> VAE:
    """An exemplar-prior VAE whose class c's exemplars sit at latent c * 10 (first coordinate) and tiny spread."""
    torch.manual_seed(0)
    n = 10 * per_class
    vae = VAE(VAEConfig(latent_dim=4, hidden_dims=(16,), prior="exemplar", exemplars=n,
                        exemplar_scale=scale)).eval()
    labels = torch.arange(n) % 10
    mu = torch.zeros(n, 4)
    mu[:, 0] = 10.0 * labels
    mu[:, 1] = torch.arange(n).float() / n  # each exemplar its own place
    vae.set_exemplars(mu, torch.full((n, 4), 2 * math.log(spread_)), labels)
    return vae


def test_exemplar_draws_for_a_class_come_from_that_class_only():
    vae = exemplar_vae()
    classes = torch.tensor([7, 0, 3, 3, 9] * 40)
    z = vae.latents_for_classes(classes, generator=torch.Generator().manual_seed(1))
    assert z.shape == (200, 4) and z.dtype == torch.float32
    assert torch.equal((z[:, 0] / 10).round().long(), classes)  # class c's exemplars sit at 10 c
    # each of class 3's exemplars is picked, roughly as often as the others
    picked = (z[classes == 3, 1] * 30).round().long()
    assert set(picked.tolist()) == {3, 13, 23}
    again = vae.latents_for_classes(classes, generator=torch.Generator().manual_seed(1))
    assert torch.equal(z, again)  # the stream decides everything


def test_exemplar_prior_is_class_conditional_everywhere_it_matters(tmp_path):
    from models.synthetic import label_source, make
    from models.sampling import is_conditional
    vae = exemplar_vae()
    assert is_conditional(vae) and label_source(vae) == "generator"
    assert not is_conditional(VAE(VAMP))
    images, labels = make(vae, 100, seed=5)
    assert torch.equal(torch.bincount(labels.long(), minlength=10), torch.full((10,), 10))  # equal shares
    save(vae, vae.config, {"preset": "t"}, tmp_path / "x.safetensors")
    loaded = load(tmp_path / "x.safetensors").module
    assert loaded.exemplar_mu.dtype == torch.float16 and torch.equal(loaded.exemplar_labels, vae.exemplar_labels)
    assert torch.equal(make(loaded, 100, seed=5)[0], images)  # the same sequence after a round trip
    # a seed without a class: a draw from the whole mixture, each exemplar by the noise's first coordinate
    z = prior_draws(vae, torch.randn(500, 4, generator=torch.Generator().manual_seed(0)))
    assert set((z[:, 0] / 10).round().long().tolist()) == set(range(10))


def test_exemplar_log_prior_is_the_mean_of_its_components():
    vae = exemplar_vae(per_class=1, spread_=0.5)
    z = torch.randn(7, 4)
    mu, logvar = vae.exemplar_mu.float(), vae.exemplar_logvar.float()
    want = torch.logsumexp(gaussian_log_density(z[:, None], mu[None], logvar[None]), dim=1) - math.log(10)
    assert torch.allclose(vae.log_prior(z), want, atol=1e-4)


def test_exemplar_scale_widens_every_posterior_in_draws_and_density():
    classes = torch.full((4000,), 5)
    plain = exemplar_vae(spread_=0.01).latents_for_classes(classes, torch.Generator().manual_seed(2))
    wide = exemplar_vae(spread_=0.01, scale=2.5).latents_for_classes(classes, torch.Generator().manual_seed(2))
    assert torch.allclose(wide[:, 0] - 50, 2.5 * (plain[:, 0] - 50), atol=1e-5)  # same picks, wider noise
    assert 0.024 < (wide[:, 2]).std() < 0.026
    vae = exemplar_vae(per_class=1, spread_=0.5, scale=3.0)
    z = torch.randn(7, 4)
    mu, logvar = vae.exemplar_mu.float(), vae.exemplar_logvar.float() + 2 * math.log(3.0)
    want = torch.logsumexp(gaussian_log_density(z[:, None], mu[None], logvar[None]), dim=1) - math.log(10)
    assert torch.allclose(vae.log_prior(z), want, atol=1e-4)
    with pytest.raises(ValueError, match="exemplar_scale > 0"):
        VAE(VAEConfig(latent_dim=4, prior="exemplar", exemplars=3, exemplar_scale=0.0))


def test_exemplars_must_fit_the_prior():
    vae = exemplar_vae()
    with pytest.raises(ValueError, match="exemplars must be"):
        vae.set_exemplars(torch.zeros(5, 4), torch.zeros(5, 4), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="classes 0-9"):
        vae.set_exemplars(torch.zeros(30, 4), torch.zeros(30, 4), torch.full((30,), 10))
    with pytest.raises(ValueError, match="each of them"):  # a class without exemplars could not be drawn
        vae.set_exemplars(torch.zeros(30, 4), torch.zeros(30, 4), torch.arange(30) % 9)
    with pytest.raises(ValueError, match="exemplars >= 1"):
        VAE(VAEConfig(prior="exemplar"))
    with pytest.raises(ValueError, match="exemplar prior draws"):
        VAE(VAMP).latents_for_classes(torch.tensor([1]))
