"""Shared fixtures: tiny randomly initialised checkpoints and apps running their lifespan."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from models import ClassifierConfig, DigitClassifier, Generator, GeneratorConfig, VAE, VAEConfig, save

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "models" / "weights"
BUNDLED_NAMES = ("vae", "gan", "vae-seed", "gan-seed", "classifier")


def write_tiny_weights(folder: Path, seed: int = 0) -> Path:
    """Small random models named like the bundled ones: vae, gan (mlp), classifier."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    card = {"preset": "tiny", "description": "random init for tests", "epochs": 0, "metrics": {}}
    vae_cfg = VAEConfig(latent_dim=4, hidden_dims=(16,))
    gan_cfg = GeneratorConfig(latent_dim=4, hidden_dim=16, output="sigmoid")
    cls_cfg = ClassifierConfig(channels=(4, 8), feature_dim=16)
    save(VAE(vae_cfg), vae_cfg, {**card, "preset": "vae"}, folder / "vae.safetensors")
    save(Generator(gan_cfg), gan_cfg, {**card, "preset": "gan"}, folder / "gan.safetensors")
    save(DigitClassifier(cls_cfg).eval(), cls_cfg, {**card, "preset": "classifier"}, folder / "classifier.safetensors")
    return folder


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("tiny-weights"))


def make_settings(weights_dir: Path, **overrides):
    from service.config import Settings
    return Settings(weights_dir=weights_dir, device="cpu", **overrides)


def make_client(weights_dir: Path, **overrides) -> TestClient:
    from service.main import create_app
    return TestClient(create_app(make_settings(weights_dir, **overrides)))


@pytest.fixture(scope="session")
def client(tiny_weights):
    with make_client(tiny_weights) as c:  # `with` runs the lifespan: models load and warm up
        yield c


@pytest.fixture(scope="session")
def bundled_client():
    missing = [n for n in BUNDLED_NAMES if not (BUNDLED / f"{n}.safetensors").exists()]
    if missing:
        pytest.fail(f"bundled weights missing: {missing}")
    with make_client(BUNDLED) as c:
        yield c


@asynccontextmanager
async def async_client(weights_dir: Path, **overrides):
    """An httpx AsyncClient on the app with its lifespan running, for truly concurrent requests."""
    from service.main import create_app
    app = create_app(make_settings(weights_dir, **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c, app


def run(coro):
    return asyncio.run(coro)
