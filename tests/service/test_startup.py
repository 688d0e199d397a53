"""Faults at startup stop the service with a message naming the cause; tested in-process and with
a real uvicorn process."""
import asyncio
import os
import shutil
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

import service.main as service_main
from service.main import create_app
from service.registry import RegistryError, load_registry
from tests.conftest import ROOT, free_port, make_settings, write_tiny_weights


@pytest.fixture
def weights(tmp_path):
    return write_tiny_weights(tmp_path / "w")


def corrupt(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_loads_all(weights):
    registry = load_registry(weights, "cpu")
    assert set(registry.models) == {"vae", "gan", "classifier"}
    assert registry.judge(registry.models["gan"]).name == "classifier"
    assert registry.models["gan"].dataset.title == "MNIST"  # a card without a dataset is MNIST


def test_faults(weights, tmp_path):
    with pytest.raises(RegistryError, match="is not a directory"):
        load_registry(tmp_path / "missing", "cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError, match="no \\*.safetensors"):
        load_registry(empty, "cpu")
    corrupt(weights / "gan.safetensors")
    with pytest.raises(RegistryError, match="gan.safetensors.*does not match its model card"):
        load_registry(weights, "cpu")


def test_truncated_and_cardless(weights):
    path = weights / "vae.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    (weights / "vae.json").unlink()
    with pytest.raises(RegistryError, match="vae.json is missing"):
        load_registry(weights, "cpu")


def test_unreadable_card(weights):
    (weights / "classifier.json").write_text("[[[")
    with pytest.raises(RegistryError, match="classifier.json: unreadable model card"):
        load_registry(weights, "cpu")


def start_server(env_overrides, timeout=60):
    env = {**os.environ, **env_overrides}
    return subprocess.run([sys.executable, "-m", "service", "--port", str(free_port())], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_real_process_exits_non_zero_naming_the_file(weights):
    """A fault found while the models load: one log line names the file; uvicorn prints no traceback."""
    corrupt(weights / "vae.safetensors")
    result = start_server({"DIGITGEN_WEIGHTS_DIR": str(weights)})
    assert result.returncode != 0
    assert "startup failed" in result.stderr and "vae.safetensors" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    failures = [line for line in result.stderr.splitlines() if "vae.safetensors" in line]
    assert len(failures) == 1, result.stderr


def assert_one_clear_line(result, *expected):
    """Refused before uvicorn starts: exit status 2 and exactly one line on stderr, naming the setting."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("digitgen: "), result.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="machine has a GPU")
def test_real_process_refuses_an_absent_gpu(weights):
    result = start_server({"DIGITGEN_WEIGHTS_DIR": str(weights), "DIGITGEN_DEVICE": "cuda"})
    assert_one_clear_line(result, "DIGITGEN_DEVICE='cuda'", "no CUDA GPU is visible")


@pytest.mark.parametrize("name, value, expected", [
    ("DIGITGEN_DEVICE", "gpu", "DIGITGEN_DEVICE='gpu' is not valid: must be auto, cpu, cuda or cuda:N"),
    ("DIGITGEN_MAX_BATCH_SIZE", "0", "DIGITGEN_MAX_BATCH_SIZE='0' is not valid: should be greater than or equal to 1"),
    ("DIGITGEN_MAX_SAMPLES", "lots", "DIGITGEN_MAX_SAMPLES='lots' is not valid: should be a valid integer"),
    ("DIGITGEN_LOG_LEVEL", "loud", "DIGITGEN_LOG_LEVEL='loud' is not valid: should be 'critical', 'error', "
                                   "'warning', 'info' or 'debug'"),
    ("DIGITGEN_LOG_FORMAT", "xml", "DIGITGEN_LOG_FORMAT='xml' is not valid: should be 'text' or 'json'"),
    ("DIGITGEN_METRICS_REQUIRE_KEY", "perhaps", "DIGITGEN_METRICS_REQUIRE_KEY='perhaps' is not valid"),
    ("DIGITGEN_CORS_ORIGINS", "https://a.example", "DIGITGEN_CORS_ORIGINS is not valid: must be JSON"),
])
def test_real_process_refuses_a_bad_setting(weights, name, value, expected):
    result = start_server({"DIGITGEN_WEIGHTS_DIR": str(weights), name: value})
    assert_one_clear_line(result, expected)


def test_real_process_refuses_a_missing_or_empty_weights_dir(tmp_path):
    result = start_server({"DIGITGEN_WEIGHTS_DIR": str(tmp_path / "nonexistent")})
    assert_one_clear_line(result, "DIGITGEN_WEIGHTS_DIR=", "nonexistent", "is not a directory")
    result = start_server({"DIGITGEN_WEIGHTS_DIR": str(tmp_path)})
    assert_one_clear_line(result, "DIGITGEN_WEIGHTS_DIR=", "holds no *.safetensors weights")


def test_the_api_key_is_never_echoed(weights):
    """Every bad setting is named with its value, except the key's: several bad settings, one line each."""
    result = start_server({"DIGITGEN_WEIGHTS_DIR": str(weights), "DIGITGEN_API_KEY": "zq-secret-93",
                           "DIGITGEN_DEVICE": "gpu", "DIGITGEN_MAX_STEPS": "1"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and {line.split("=")[0] for line in lines} == {"digitgen: DIGITGEN_DEVICE",
                                                                         "digitgen: DIGITGEN_MAX_STEPS"}
    assert "zq-secret-93" not in result.stderr


def drive_startup(app) -> tuple[list[dict], BaseException]:
    """Run the ASGI lifespan startup as a server does; return what the app sent."""
    sent = []

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        sent.append(message)

    async def run():
        await app({"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}, receive, send)

    with pytest.raises(Exception) as raised:
        asyncio.run(run())
    return sent, raised.value


def test_a_known_startup_fault_reaches_the_server_without_a_traceback(tmp_path, caplog):
    """uvicorn prints lifespan.startup.failed's message: for a RegistryError, already logged as one
    line naming the cause, the message is empty (no traceback around the line)."""
    sent, exc = drive_startup(create_app(make_settings(tmp_path / "missing")))
    assert isinstance(exc, RegistryError)
    assert sent == [{"type": "lifespan.startup.failed", "message": ""}]
    failures = [r for r in caplog.records if r.levelname == "ERROR" and r.name == "digitgen"]
    assert [r.getMessage() for r in failures] == [f"startup failed: DIGITGEN_WEIGHTS_DIR="
                                                 f"{str(tmp_path / 'missing')!r} is not a directory"]
    assert failures[0].exc_info is None


def test_an_unexpected_startup_fault_keeps_its_traceback(weights, monkeypatch):
    def bug(*args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(service_main, "load_registry", bug)
    sent, exc = drive_startup(create_app(make_settings(weights)))
    assert isinstance(exc, ZeroDivisionError)
    (failed,) = sent
    assert failed["type"] == "lifespan.startup.failed" and "Traceback" in failed["message"]
    assert "ZeroDivisionError: a bug" in failed["message"]


def test_test_clients_still_see_the_startup_error(tmp_path):
    with pytest.raises(RegistryError, match="is not a directory"):
        with TestClient(create_app(make_settings(tmp_path / "missing"))):
            pass
