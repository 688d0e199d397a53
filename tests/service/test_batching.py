import asyncio

import pytest
import torch

from service.batching import Batcher
from tests.conftest import async_client, run


def test_concurrent_requests_share_batches_and_keep_their_seeds(tiny_weights):
    async def scenario():
        async with async_client(tiny_weights, batch_wait_ms=50, max_batch_size=64) as (client, app):
            solo = {}
            for seed in range(8):
                solo[seed] = (await client.get("/sample", params={"model": "gan", "seed": seed, "n": 2})).content
            together = await asyncio.gather(*[client.get("/sample", params={"model": "gan", "seed": s, "n": 2})
                                              for s in range(8)])
            metrics = (await client.get("/metrics")).text
            return solo, together, metrics

    solo, together, metrics = run(scenario())
    for seed, response in enumerate(together):
        assert response.status_code == 200
        assert response.content == solo[seed], f"seed {seed} changed when batched"
    # 8 solo batches of 2 latents, then the 8 concurrent requests in fewer, larger batches
    count = next(float(l.split()[-1]) for l in metrics.splitlines() if l.startswith('digitgen_batch_size_count{model="gan"}'))
    total = next(float(l.split()[-1]) for l in metrics.splitlines() if l.startswith('digitgen_batch_size_sum{model="gan"}'))
    assert total == 32
    assert count < 16


def test_batcher_respects_max_batch_size_and_order():
    from concurrent.futures import ThreadPoolExecutor
    sizes = []

    async def scenario():
        executor = ThreadPoolExecutor(1)
        batcher = Batcher(lambda z: z * 2, executor, max_batch_size=5, wait_ms=20, on_batch=sizes.append)
        batcher.start()
        inputs = [torch.full((2, 1), float(i)) for i in range(6)]
        outputs = await asyncio.gather(*[batcher.submit(z) for z in inputs])
        await batcher.stop()
        executor.shutdown()
        return inputs, outputs

    inputs, outputs = run(scenario())
    for z, out in zip(inputs, outputs):
        assert torch.equal(out, z * 2)
    assert max(sizes) <= 5 and sum(sizes) == 12


def test_a_failing_forward_fails_its_requests_only():
    from concurrent.futures import ThreadPoolExecutor

    def fn(z):
        if (z < 0).any():
            raise ValueError("boom")
        return z

    async def scenario():
        executor = ThreadPoolExecutor(1)
        batcher = Batcher(fn, executor, max_batch_size=1, wait_ms=0)
        batcher.start()
        with pytest.raises(ValueError):
            await batcher.submit(torch.tensor([[-1.0]]))
        ok = await batcher.submit(torch.tensor([[3.0]]))  # the loop survived
        await batcher.stop()
        executor.shutdown()
        return ok

    assert run(scenario()).item() == 3.0


def test_big_cpu_batches_of_a_conv_generator_run_in_chunks_with_the_same_rows(tiny_weights, tmp_path):
    import shutil

    from models import Generator, GeneratorConfig, save
    from service import inference
    from service.inference import CPU_CHUNK, Inference
    from service.registry import load_registry

    for f in tiny_weights.iterdir():
        shutil.copy(f, tmp_path / f.name)
    config = GeneratorConfig(latent_dim=4, arch="dcgan", hidden_dim=8, output="tanh")
    save(Generator(config), config, {"preset": "gan", "epochs": 0, "metrics": {}}, tmp_path / "gan.safetensors")
    model = load_registry(tmp_path, "cpu").get("gan")
    assert inference._chunked_on_cpu(model)
    assert not inference._chunked_on_cpu(load_registry(tiny_weights, "cpu").get("gan"))  # an MLP: one pass
    latents = torch.randn(2 * CPU_CHUNK + 17, model.latent_dim)
    whole = Inference._generate_u8(model, latents)
    one_by_one = torch.cat([Inference._generate_u8(model, z[None]) for z in latents])
    assert whole.shape == (len(latents), 1, 28, 28) and whole.dtype == torch.uint8
    assert torch.equal(whole, one_by_one)
