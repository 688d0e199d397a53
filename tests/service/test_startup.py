"""Faults at startup stop the service with a message naming the cause; tested in-process and with
a real uvicorn process."""
import os
import shutil
import subprocess
import sys

import pytest

from service.registry import RegistryError, load_registry
from tests.conftest import ROOT, write_tiny_weights


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
    assert registry.classifier.name == "classifier"


def test_faults(weights, tmp_path):
    with pytest.raises(RegistryError, match="does not exist"):
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
    return subprocess.run([sys.executable, "-m", "service", "--port", "0"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_real_process_exits_non_zero_naming_the_file(weights):
    corrupt(weights / "vae.safetensors")
    result = start_server({"DIGITGEN_WEIGHTS_DIR": str(weights)})
    assert result.returncode != 0
    assert "startup failed" in result.stderr and "vae.safetensors" in result.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="machine has a GPU")
def test_real_process_refuses_an_absent_gpu(weights):
    result = start_server({"DIGITGEN_WEIGHTS_DIR": str(weights), "DIGITGEN_DEVICE": "cuda"})
    assert result.returncode != 0
    assert "no CUDA GPU is visible" in result.stderr


def test_real_process_refuses_a_bad_setting(weights):
    result = start_server({"DIGITGEN_WEIGHTS_DIR": str(weights), "DIGITGEN_DEVICE": "gpu"})
    assert result.returncode != 0
    assert "device" in result.stderr and "must be auto, cpu, cuda or cuda:N" in result.stderr
