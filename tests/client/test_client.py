"""digitgen_client against a real uvicorn: pages, resumption after a restart, errors, the CLI."""
import asyncio
import io
import os
import subprocess
import sys
import tarfile

import httpx
import numpy as np
import pytest
import torch

from digitgen_client import AsyncClient, Client, DigitgenError
from digitgen_client.cli import main as cli_main
from tests.conftest import ROOT, free_port, live_server, wait_ready


@pytest.fixture(scope="module")
def weights(conditional_weights):
    return conditional_weights


@pytest.fixture(scope="module")
def server(weights):
    with live_server({"DIGITGEN_WEIGHTS_DIR": str(weights)}) as (base, proc):
        yield base


def reference(base, n, seed, **params):
    response = httpx.get(f"{base}/dataset", params={"n": n, "seed": seed, **params}, timeout=60)
    data = np.load(io.BytesIO(response.content))
    return data["images"], data["labels"]


def test_pages_add_up_to_one_request(server):
    want_images, want_labels = reference(server, 2500, 5)
    with Client(server) as client:
        images, labels = client.dataset(2500, seed=5, batch=700)
        assert client.last_seed == 5
        pages = list(client.iter_dataset(2500, seed=5, batch=1000))
    assert np.array_equal(images, want_images) and np.array_equal(labels, want_labels)
    assert [len(p[1]) for p in pages] == [1000, 1000, 500]


def test_digits_sample_and_models(server):
    with Client(server) as client:
        _, labels = client.dataset(40, seed=1, digits=[3, 8])
        assert set(labels.tolist()) == {3, 8}
        images = client.sample(5, model="vae", seed=2)
        assert images.shape == (5, 28, 28) and images.dtype == np.uint8 and client.last_seed == 2
        assert {m["name"] for m in client.models()} == {"gan", "vae", "vae-exemplar", "classifier"}


def test_verified_sets_through_the_client_and_the_cli(server, tmp_path):
    want_images, want_labels = reference(server, 1300, 3, verified="true")
    plain_images, _ = reference(server, 1300, 3)
    assert not np.array_equal(want_images, plain_images)  # the random test classifier disagrees often
    with Client(server) as client:
        images, labels = client.dataset(1300, seed=3, batch=600, verified=True)
    assert np.array_equal(images, want_images) and np.array_equal(labels, want_labels)

    async def fetch():
        async with AsyncClient(server) as client:
            return await client.dataset(1300, seed=3, batch=500, verified=True)

    async_images, _ = asyncio.run(fetch())
    assert np.array_equal(async_images, want_images)
    cli_main(["fetch", "--url", server, "--n", "1300", "--seed", "3", "--verified", "--out",
              str(tmp_path / "v.npz"), "--quiet"])
    with np.load(tmp_path / "v.npz") as data:
        assert np.array_equal(data["images"], want_images)


def test_errors_carry_the_code_and_are_not_retried(server):
    seen = []

    def count(request):
        seen.append(request.url.path)

    with Client(server, retries=5) as client:
        client._http.event_hooks["request"] = [count]
        with pytest.raises(DigitgenError) as error:
            client.dataset(10, model="vae", digits=[3])
    assert error.value.status == 422 and error.value.code == "no_classes" and len(seen) == 1


def test_the_async_client_gives_the_same_set(server):
    want_images, want_labels = reference(server, 1200, 9)

    async def fetch():
        async with AsyncClient(server) as client:
            return await client.dataset(1200, seed=9, batch=500)

    images, labels = asyncio.run(fetch())
    assert np.array_equal(images, want_images) and np.array_equal(labels, want_labels)


def test_torch_dataset(server):
    with Client(server) as client:
        data = client.torch_dataset(64, seed=3)
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    images, labels = next(iter(loader))
    assert len(data) == 64 and images.shape == (16, 1, 28, 28) and images.dtype == torch.float32
    assert 0 <= float(images.min()) and float(images.max()) <= 1 and labels.dtype == torch.int64


def _start(port, weights):
    proc = subprocess.Popen([sys.executable, "-m", "service", "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, env={**os.environ, "DIGITGEN_DEVICE": "cpu", "DIGITGEN_WEIGHTS_DIR": str(weights)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_ready(f"http://127.0.0.1:{port}", proc)
    return proc


class RestartMidStream(httpx.BaseTransport):
    """Kills the server once the answer to the page at `offset` has started, before its body is read,
    and starts a new one on the same port: the client sees a broken page and must fetch it again."""

    def __init__(self, offset, restart):
        self.inner, self.offset, self.restart, self.done = httpx.HTTPTransport(), str(offset), restart, False

    def handle_request(self, request):
        response = self.inner.handle_request(request)
        if not self.done and request.url.params.get("offset") == self.offset:
            self.done = True
            self.restart()
        return response


def test_iter_dataset_resumes_after_the_server_is_killed_mid_stream(weights):
    port = free_port()
    procs = [_start(port, weights)]
    try:
        base = f"http://127.0.0.1:{port}"
        want_images, want_labels = reference(base, 60000, 21)

        def restart():
            procs[-1].kill()
            procs[-1].wait()
            procs.append(_start(port, weights))

        transport = RestartMidStream(offset=20000, restart=restart)
        with Client(base, retries=8, transport=transport) as client:
            pages = list(client.iter_dataset(60000, seed=21, batch=20000))
        assert transport.done and len(procs) == 2
        images = np.concatenate([p[0] for p in pages])
        labels = np.concatenate([p[1] for p in pages])
        assert np.array_equal(images, want_images) and np.array_equal(labels, want_labels)  # none lost, none twice
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_the_cli_writes_a_loadable_npz_and_tar(server, tmp_path, capsys):
    want_images, want_labels = reference(server, 1500, 4)
    cli_main(["fetch", "--url", server, "--n", "1500", "--seed", "4", "--batch", "600", "--out",
              str(tmp_path / "synth.npz"), "--quiet"])
    with np.load(tmp_path / "synth.npz") as data:
        assert np.array_equal(data["images"], want_images) and np.array_equal(data["labels"], want_labels)
    cli_main(["fetch", "--url", server, "--n", "1500", "--seed", "4", "--batch", "600", "--out",
              str(tmp_path / "synth.tar"), "--quiet"])
    with tarfile.open(tmp_path / "synth.tar") as archive:
        names = archive.getnames()
        assert len(names) == 3000 and names[:2] == ["000000.png", "000000.cls"] and names[-1] == "001499.cls"
        assert int(archive.extractfile("001234.cls").read()) == want_labels[1234]
    # three pages make the archive one request for the 1,500 items gives
    whole = httpx.get(f"{server}/dataset", params={"n": 1500, "seed": 4, "format": "tar"}, timeout=60).content
    assert (tmp_path / "synth.tar").read_bytes() == whole
    assert "seed 4" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.part"))


def test_a_truncated_or_overlong_tar_page_is_refused():
    from digitgen_client._common import DigitgenError
    from digitgen_client.cli import tar_end, tar_members
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name in ("a.cls", "b.cls"):
            info = tarfile.TarInfo(name)
            info.size = 1
            archive.addfile(info, io.BytesIO(b"7"))
    page = sink.getvalue()
    assert bytes(tar_members(page, 2)) + tar_end(2048) == page  # two members, then the end as tarfile writes it
    with pytest.raises(DigitgenError, match="fewer than"):
        tar_members(page[:1024], 2)
    with pytest.raises(DigitgenError, match="more than"):
        tar_members(page, 1)


def test_the_cli_reports_a_refusal_in_one_line(server, tmp_path):
    with pytest.raises(SystemExit) as stop:
        cli_main(["fetch", "--url", server, "--n", "10", "--model", "nope", "--out", str(tmp_path / "x.npz"),
                  "--quiet"])
    assert str(stop.value).startswith("digitgen: 404 model_not_found:") and not (tmp_path / "x.npz").exists()
    with pytest.raises(SystemExit) as stop:
        cli_main(["fetch", "--url", server, "--n", "0", "--out", str(tmp_path / "x.npz"), "--quiet"])
    assert "at least 1" in str(stop.value)


def test_the_client_never_imports_the_service():
    code = ("import sys, digitgen_client, digitgen_client.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'service', 'trainer', 'models', 'torch', 'fastapi'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
