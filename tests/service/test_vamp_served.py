"""A VAE with a learned prior (VampPrior) behind the unchanged contract: a seed stands for a draw from
the prior, /encode and /decode share one latent space, /interpolate runs between the seeds' draws."""
import io

import numpy as np
import pytest
import torch

from models import ClassifierConfig, DigitClassifier, VAE, VAEConfig, save
from models.sampling import seed_latents, to_uint8
from tests.conftest import make_client
from tests.service.helpers import digit_like, image_bytes

CONFIG = VAEConfig(latent_dim=4, hidden_dims=(16,), prior="vamp", pseudo_inputs=6)


@pytest.fixture(scope="module")
def vamp(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vamp-weights")
    torch.manual_seed(0)
    card = {"preset": "tiny", "description": "random init for tests", "epochs": 0, "metrics": {}}
    vae = VAE(CONFIG).eval()
    with torch.no_grad():  # spread the components apart, so a draw's component is visible in its latent
        vae.pseudo_inputs.copy_(torch.rand_like(vae.pseudo_inputs))
    save(vae, CONFIG, card, folder / "vae.safetensors")
    classifier = ClassifierConfig(channels=(4, 8), feature_dim=16)
    save(DigitClassifier(classifier).eval(), classifier, card, folder / "classifier.safetensors")
    with make_client(folder) as client:
        yield client, vae


def _npy(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content))


def test_a_seed_is_a_draw_from_the_learned_prior(vamp):
    client, vae = vamp
    body = client.get("/sample", params={"model": "vae", "seed": 11, "n": 3, "format": "json"}).json()
    expected = seed_latents(vae, 11, 3)
    served = torch.tensor([s["latent"] for s in body["samples"]])
    assert torch.allclose(served, expected, atol=1e-6)
    noise = torch.randn(3, 4, generator=torch.Generator().manual_seed(11))
    assert not torch.allclose(served, noise, atol=1e-3)  # not the raw N(0, I) noise
    images = _npy(client.get("/sample", params={"model": "vae", "seed": 11, "n": 3, "format": "npy"}))
    with torch.no_grad():
        assert np.array_equal(images, to_uint8(vae.decode(expected)).numpy()[:, 0])


def test_decode_of_a_sampled_latent_is_the_sample(vamp):
    client, _ = vamp
    sampled = client.get("/sample", params={"model": "vae", "seed": 5, "format": "json"}).json()["samples"][0]
    decoded = client.post("/decode", json={"model": "vae", "latents": [sampled["latent"]], "format": "json"}).json()
    assert decoded["samples"][0]["png_base64"] == sampled["png_base64"]


def test_interpolation_ends_at_the_seeds_draws(vamp):
    client, vae = vamp
    body = client.get("/interpolate", params={"model": "vae", "seed_a": 1, "seed_b": 2, "steps": 5,
                                              "format": "json"}).json()
    assert np.allclose(body["latents"][0], seed_latents(vae, 1, 1)[0].numpy(), atol=1e-5)
    assert np.allclose(body["latents"][-1], seed_latents(vae, 2, 1)[0].numpy(), atol=1e-5)


def test_encode_then_decode_is_the_reconstruction(vamp):
    client, _ = vamp
    data = image_bytes(digit_like())
    encoded = client.post("/encode", content=data, headers={"content-type": "image/png"}, params={"seed": 0}).json()
    decoded = _npy(client.post("/decode", json={"model": "vae", "latents": [encoded["mu"]], "format": "npy"}))
    reconstructed = client.post("/reconstruct", content=data, headers={"content-type": "image/png"})
    assert reconstructed.status_code == 200
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(reconstructed.content))), decoded[0])
