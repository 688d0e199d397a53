"""What a VAE variant costs on this machine: seconds per training step (batch 128, Adam, the VampPrior's
pseudo-inputs encoded every step) and microseconds per importance sample of the test likelihood (decode
the latent, score the image's 784 pixels, the prior's density: what `evaluate`'s NLL pays 10,000 x
5,000 times), for the architectures the VAE ladder chooses between.

    .venv/bin/python -m benchmarks.vae_cost

Writes benchmarks/results/vae-cost-<date>.json. Random weights: cost does not depend on training.
"""
from __future__ import annotations

import time

import torch

from benchmarks.common import write_result
from models.vae import VAE, VAEConfig
from trainer.metrics import bernoulli_log_likelihood

VARIANTS = {
    "mlp 512-512, normal prior": VAEConfig(latent_dim=32, hidden_dims=(512, 512)),
    "mlp 512-512, VampPrior 500": VAEConfig(latent_dim=32, hidden_dims=(512, 512), prior="vamp", pseudo_inputs=500),
    "conv encoder, mlp decoder, VampPrior 500": VAEConfig(latent_dim=32, hidden_dims=(512, 512), encoder="conv",
                                                          prior="vamp", pseudo_inputs=500),
    "conv 16 both ways, VampPrior 500": VAEConfig(latent_dim=32, hidden_dims=(512,), encoder="conv", decoder="conv",
                                                  channels=16, prior="vamp", pseudo_inputs=500),
    "conv 32 both ways, VampPrior 500": VAEConfig(latent_dim=32, hidden_dims=(512,), encoder="conv", decoder="conv",
                                                  channels=32, prior="vamp", pseudo_inputs=500),
}
NLL_DECODES = 10_000 * 5_000  # test images x importance samples
TRAIN_IMAGES = 55_000


def measure(config: VAEConfig, steps: int = 15, batch: int = 128) -> dict:
    torch.manual_seed(0)
    model = VAE(config)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.bernoulli(torch.rand(batch, 784))
    for _ in range(3):  # warm-up
        loss = model.neg_elbo(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.neg_elbo(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    step_s = (time.perf_counter() - start) / steps
    model.eval()
    # one of evaluate's chunks: 500 importance samples for each of 20 images
    images, z = torch.bernoulli(torch.rand(20, 784)), torch.randn(500, 20, config.latent_dim)
    log_likelihood = bernoulli_log_likelihood(model.decode_logits)
    with torch.no_grad():
        log_likelihood(images, z) + model.log_prior(z)
        start = time.perf_counter()
        log_likelihood(images, z) + model.log_prior(z)
        sample_s = (time.perf_counter() - start) / z.shape[0] / z.shape[1]
    return {"parameters": sum(p.numel() for p in model.parameters()), "step_ms": round(1e3 * step_s, 1),
            "epoch_s": round(step_s * TRAIN_IMAGES / batch), "us_per_importance_sample": round(1e6 * sample_s, 1),
            "nll_10k_min": round(sample_s * NLL_DECODES / 60)}


def main() -> None:
    rows = []
    for name, config in VARIANTS.items():
        row = {"variant": name, **measure(config)}
        rows.append(row)
        print(f"{name:44s} {row['parameters'] / 1e6:5.2f} M params  step {row['step_ms']:6.1f} ms  epoch "
              f"{row['epoch_s']:4d} s  {row['us_per_importance_sample']:6.1f} us per importance sample  NLL on 10k "
              f"test images ~{row['nll_10k_min']} min",
              flush=True)
    print(f"wrote {write_result('vae-cost', {'threads': torch.get_num_threads(), 'rows': rows})}")


if __name__ == "__main__":
    main()
