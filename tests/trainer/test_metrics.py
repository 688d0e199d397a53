import math

import pytest
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from models import ClassifierConfig, DigitClassifier
from trainer.metrics import (ClassifierLogits, class_histogram, gaussian_log_density, image_metrics,
                             importance_sampled_log_likelihood, kl_to_uniform)


def test_kl_of_one_class_is_log_10_and_balanced_is_0():
    one = class_histogram(torch.eye(10)[torch.zeros(100, dtype=torch.long)])
    assert kl_to_uniform(one) == pytest.approx(math.log(10))
    balanced = class_histogram(torch.eye(10)[torch.arange(100) % 10])
    assert kl_to_uniform(balanced) == pytest.approx(0.0)


def test_inception_score_of_a_perfect_classifier_on_balanced_data_is_10():
    from torchmetrics.image.inception import InceptionScore

    class OneHot(nn.Module):  # reads the label from the first pixel: a perfectly confident judge
        config = ClassifierConfig()

        def forward(self, x):
            return 100.0 * nn.functional.one_hot((x[:, 0, 0, 0] * 10).long().clamp(0, 9), 10).float()

    images = torch.zeros(1000, 1, 28, 28)
    images[:, 0, 0, 0] = (torch.arange(1000) % 10).float() / 10 + 0.01
    score = InceptionScore(feature=ClassifierLogits(OneHot()), normalize=True, splits=1)
    score.update(images)
    assert score.compute()[0].item() == pytest.approx(10.0, rel=1e-3)


class FirstPixels(nn.Module):
    """Features = the first 4 pixels, so we can place Gaussian features by hand."""
    num_features = 4

    def forward(self, x):
        return x.reshape(len(x), -1)[:, :4].double()


def gaussian_images(n, shift, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 28, 28)
    images.view(n, -1)[:, :4] = torch.randn(n, 4, generator=g) + shift
    return images


def test_fid_of_shifted_gaussians_is_the_squared_shift():
    fid = FrechetInceptionDistance(feature=FirstPixels(), normalize=True)
    fid.update(gaussian_images(20000, 0.0, 0), real=True)
    fid.update(gaussian_images(20000, torch.tensor([1.0, 2.0, 0.0, 0.0]), 1), real=False)
    # same covariance, means differ by (1, 2, 0, 0): FID = |mu1 - mu2|^2 = 5
    assert fid.compute().item() == pytest.approx(5.0, abs=0.1)


def test_identical_sets_have_fid_near_zero_and_full_coverage():
    torch.manual_seed(0)
    classifier = DigitClassifier(ClassifierConfig(channels=(4, 8), feature_dim=16)).eval()
    images = torch.rand(600, 1, 28, 28)
    m = image_metrics(images, images, classifier, kid_subsets=5)
    assert abs(m["fid"]) < 1e-3
    assert abs(m["kid"]) < 1e-3
    assert m["n"] == 600 and len(m["class_histogram"]) == 10
    assert sum(m["class_histogram"]) == pytest.approx(1.0, abs=1e-3)


def test_importance_sampling_matches_a_linear_gaussian_model():
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I): log p(x) = log N(x; b, W W^T + s^2 I) exactly."""
    torch.manual_seed(0)
    d, D, s = 2, 3, 0.5
    W = torch.randn(D, d, dtype=torch.float64)
    b = torch.randn(D, dtype=torch.float64)
    x = torch.randn(5, D, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(b, W @ W.T + s**2 * torch.eye(D)).log_prob(x)
    # exact posterior covariance; the proposal keeps only its diagonal, as a VAE encoder would
    S = torch.linalg.inv(torch.eye(d, dtype=torch.float64) + W.T @ W / s**2)
    m = (S @ W.T @ (x - b).T / s**2).T

    def encode(_):
        return m, torch.log(torch.diagonal(S)).expand_as(m)

    def log_likelihood(xx, z):  # z: (c, b, d)
        mean = z @ W.T + b
        return gaussian_log_density(xx.unsqueeze(0), mean, torch.full_like(mean, math.log(s**2)))

    estimate = importance_sampled_log_likelihood(x, encode, log_likelihood, k=5000, chunk=1000,
                                                 generator=torch.Generator().manual_seed(0))
    assert torch.allclose(estimate, exact, atol=0.05)
