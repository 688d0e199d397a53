import pytest
import torch
from pydantic import ValidationError

from models.devices import DeviceError, resolve_device
from models.paths import BUNDLED_WEIGHTS
from service.config import Settings


def test_defaults_and_environment(monkeypatch, tmp_path):
    assert Settings().weights_dir == BUNDLED_WEIGHTS
    monkeypatch.setenv("DIGITGEN_DEVICE", "CUDA:1")
    monkeypatch.setenv("DIGITGEN_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("DIGITGEN_MAX_BATCH_SIZE", "32")
    monkeypatch.setenv("DIGITGEN_BATCH_WAIT_MS", "2.5")
    monkeypatch.setenv("DIGITGEN_API_KEY", "zq-secret-93")
    monkeypatch.setenv("DIGITGEN_CORS_ORIGINS", '["https://a.example"]')
    s = Settings()
    assert s.device == "cuda:1" and s.weights_dir == tmp_path and s.max_batch_size == 32
    assert s.batch_wait_ms == 2.5 and s.api_key.get_secret_value() == "zq-secret-93"
    assert s.cors_origins == ["https://a.example"]
    assert "zq-secret-93" not in repr(s)  # the key never shows up in logs


@pytest.mark.parametrize("name, value", [("DIGITGEN_DEVICE", "gpu"), ("DIGITGEN_MAX_BATCH_SIZE", "0"),
                                         ("DIGITGEN_MAX_SAMPLES", "lots"), ("DIGITGEN_BATCH_WAIT_MS", "-1"),
                                         ("DIGITGEN_INLINE_BUDGET_MS", "-0.5")])
def test_bad_settings_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_empty_api_key_means_no_auth(monkeypatch):
    monkeypatch.setenv("DIGITGEN_API_KEY", "")
    assert Settings().api_key is None


def test_device_resolution_on_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_asking_for_an_absent_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="no CUDA GPU is visible"):
        resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")
def test_cuda_selection():
    assert resolve_device("cuda") == torch.device("cuda:0")
    with pytest.raises(DeviceError, match="only"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
