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
    assert inference._chunk(model) == CPU_CHUNK
    assert inference._chunk(load_registry(tiny_weights, "cpu").get("gan")) is None  # an MLP: one pass
    latents = torch.randn(2 * CPU_CHUNK + 17, model.latent_dim)
    whole = Inference._generate_u8(model, latents)
    one_by_one = torch.cat([Inference._generate_u8(model, z[None]) for z in latents])
    assert whole.shape == (len(latents), 1, 28, 28) and whole.dtype == torch.uint8
    assert torch.equal(whole, one_by_one)


def test_cheap_batches_run_on_the_event_loop_and_dear_ones_in_the_inference_thread():
    import threading
    from concurrent.futures import ThreadPoolExecutor
    seen = []

    def fn(z):
        seen.append(threading.current_thread().name)
        return z * 2

    async def scenario():
        executor = ThreadPoolExecutor(1, thread_name_prefix="infer")
        batcher = Batcher(fn, executor, max_batch_size=64, wait_ms=0, inline_rows=4)
        batcher.start()
        small = await batcher.submit(torch.ones(4, 1))
        big = await batcher.submit(torch.ones(5, 1))
        await batcher.stop()
        executor.shutdown()
        return small, big

    small, big = run(scenario())
    assert torch.equal(small, torch.full((4, 1), 2.0)) and torch.equal(big, torch.full((5, 1), 2.0))
    assert seen[0] == threading.current_thread().name  # asyncio.run drives the loop from this thread
    assert seen[1].startswith("infer")


def test_each_request_is_finished_on_its_own_rows_and_a_failing_finish_fails_only_its_request():
    from concurrent.futures import ThreadPoolExecutor

    def finish_or_fail(rows):
        if (rows < 0).any():
            raise ValueError("cannot encode")
        return rows.sum().item()

    async def scenario():
        executor = ThreadPoolExecutor(1)
        for inline in (0, 64):  # the same answers in the thread and on the loop
            batcher = Batcher(lambda z: z * 10, executor, max_batch_size=64, wait_ms=20, inline_rows=inline)
            batcher.start()
            outcome = await asyncio.gather(
                batcher.submit(torch.ones(2, 1), finish_or_fail), batcher.submit(-torch.ones(1, 1), finish_or_fail),
                batcher.submit(torch.full((3, 1), 2.0)), return_exceptions=True)
            await batcher.stop()
            assert outcome[0] == 20.0
            assert isinstance(outcome[1], ValueError)
            assert torch.equal(outcome[2], torch.full((3, 1), 20.0))
        executor.shutdown()

    run(scenario())


def test_the_inline_limit_follows_the_budget_and_the_device(tiny_weights):
    from service.inference import inline_rows
    from service.registry import load_registry

    model = load_registry(tiny_weights, "cpu").get("gan")
    assert model.seconds_per_row > 0  # measured at start-up
    assert inline_rows(model, 0) == 0
    assert inline_rows(model, 4.0) == int(0.004 / model.seconds_per_row)
    assert inline_rows(model, 8.0) >= 2 * inline_rows(model, 4.0)
    on_gpu = type(model)(**{**model.__dict__, "device": torch.device("cuda")})
    assert inline_rows(on_gpu, 4.0) == 0  # a GPU forward pass ends in a wait: never on the loop


def test_the_event_loop_thread_runs_torch_on_one_thread_and_the_inference_thread_on_the_setting(tiny_weights):
    before = torch.get_num_threads()

    async def scenario():
        async with async_client(tiny_weights, torch_threads=2) as (client, app):
            inference = app.state.inference
            loop_threads = torch.get_num_threads()  # the lifespan ran on this thread's event loop
            worker_threads = await inference.run(torch.get_num_threads)
            ok = (await client.get("/sample", params={"model": "gan", "seed": 1})).status_code
            return loop_threads, worker_threads, ok

    try:
        assert run(scenario()) == (1, 2, 200)
    finally:
        torch.set_num_threads(before)


def test_concurrent_reconstructions_share_a_forward_pass_and_match_solo_ones(tiny_weights, monkeypatch):
    from service.inference import Inference
    passes = []
    original = Inference._reconstruct_u8

    def counted(model, images):
        passes.append(images.shape[0])
        return original(model, images)

    monkeypatch.setattr(Inference, "_reconstruct_u8", staticmethod(counted))

    async def scenario():
        async with async_client(tiny_weights, batch_wait_ms=50, max_batch_size=64) as (client, app):
            uploads = [(await client.get("/sample", params={"model": "vae", "seed": s})).content for s in range(6)]
            post = {"headers": {"Content-Type": "image/png"}}
            solo = [(await client.post("/reconstruct", params={"model": "vae"}, content=u, **post)).content
                    for u in uploads]
            solo_passes = len(passes)
            together = await asyncio.gather(*[client.post("/reconstruct", params={"model": "vae"}, content=u, **post)
                                              for u in uploads])
            return solo, solo_passes, together

    solo, solo_passes, together = run(scenario())
    assert solo_passes == 6 and passes[:6] == [1] * 6
    assert all(r.status_code == 200 for r in together)
    assert [r.content for r in together] == solo  # sharing a batch changes nothing in the answer
    assert len(passes) - solo_passes < 6 and sum(passes[6:]) == 6  # fewer, larger passes
