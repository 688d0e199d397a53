"""Shared fixtures: tiny randomly initialised checkpoints and apps running their lifespan."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from models import ClassifierConfig, DigitClassifier, Generator, GeneratorConfig, VAE, VAEConfig, save
from trainer.presets import BUNDLED as BUNDLED_MODELS

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "models" / "weights"
BUNDLED_NAMES = tuple(name for names in BUNDLED_MODELS.values() for name in names)


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


def tiny_exemplar_vae(per_class: int = 20, latent_dim: int = 4) -> tuple[VAE, VAEConfig]:
    """A small random VAE with an exemplar prior: per_class exemplars of each class, their posteriors random."""
    n = 10 * per_class
    config = VAEConfig(latent_dim=latent_dim, hidden_dims=(16,), prior="exemplar", exemplars=n)
    vae = VAE(config).eval()
    vae.set_exemplars(torch.randn(n, latent_dim), torch.full((n, latent_dim), -2.0), torch.arange(n) % 10)
    return vae, config


def write_conditional_weights(folder: Path, seed: int = 0) -> Path:
    """Small random models shaped like the bundled set for /dataset: the default dataset model
    `vae-exemplar` and a class-conditional DCGAN `gan` (their labels are the classes asked for), an
    unconditional `vae` (labelled by the classifier) and the classifier."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    card = {"preset": "tiny", "description": "random init for tests", "epochs": 0, "metrics": {}}
    gan = GeneratorConfig(latent_dim=4, arch="dcgan", hidden_dim=8, output="tanh", num_classes=10)
    vae = VAEConfig(latent_dim=4, hidden_dims=(16,))
    classifier = ClassifierConfig(channels=(4, 8), feature_dim=16)
    save(Generator(gan).eval(), gan, card, folder / "gan.safetensors")
    save(VAE(vae), vae, card, folder / "vae.safetensors")
    save(*tiny_exemplar_vae(), card, folder / "vae-exemplar.safetensors")
    save(DigitClassifier(classifier).eval(), classifier, card, folder / "classifier.safetensors")
    return folder


@pytest.fixture(scope="session")
def conditional_weights(tmp_path_factory) -> Path:
    return write_conditional_weights(tmp_path_factory.mktemp("conditional-weights"))


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
    async with app.api.router.lifespan_context(app.api):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c, app


def run(coro):
    return asyncio.run(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen, deadline_s: float = 90) -> None:
    """Poll /readyz until 200: a readiness condition, not a fixed sleep."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError("server did not become ready")


@contextmanager
def live_server(env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()):
    """A real `python -m service` (uvicorn) on a free loopback port; yields (base_url, process)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "service", "--port", str(port), "--log-level", "warning",
                             *extra_args], cwd=ROOT, env={**os.environ, "DIGITGEN_DEVICE": "cpu", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_ready(base, proc)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
