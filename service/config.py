"""Service configuration: environment variables with the DIGITGEN_ prefix (pydantic-settings)."""
from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.devices import device_syntax
from models.paths import BUNDLED_WEIGHTS

# case and surrounding spaces do not matter in these settings
_folded = BeforeValidator(lambda value: value.strip().lower() if isinstance(value, str) else value)
LogLevel = Annotated[Literal["critical", "error", "warning", "info", "debug"], _folded]
LOG_LEVELS = get_args(get_args(LogLevel)[0])

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may run on (its affinity mask), capped by its cgroup v2 CPU quota, rounded up:
    in a container with a CPU limit the mask still lists every core of the node."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to read: the affinity mask it is
    return cores


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIGITGEN_", env_file=None, extra="ignore")

    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    weights_dir: Path = Field(BUNDLED_WEIGHTS, description="folder of *.safetensors + *.json model cards")
    max_batch_size: int = Field(512, ge=1, le=65536, description="most latents in one batched forward pass")
    # 0: a batch is whatever queued during the previous forward pass, so a lone request never waits
    batch_wait_ms: float = Field(0.0, ge=0, le=10_000, description="how long a batch waits for company")
    # CPU only (a GPU forward pass ends in a wait that must not hold up the loop); 0 = always the thread
    inline_budget_ms: float = Field(5.0, ge=0, le=1000, description="largest batch cost run on the event loop")
    max_samples: int = Field(4096, ge=1, le=1_000_000, description="most images per /sample request")
    max_latents: int = Field(4096, ge=1, le=1_000_000, description="most latents per /decode request")
    max_dataset: int = Field(1_000_000, ge=1, le=100_000_000, description="most images per /dataset request")
    max_steps: int = Field(64, ge=2, le=10_000, description="most interpolation steps")
    max_scale: int = Field(16, ge=1, le=64, description="largest nearest-neighbour upscaling")
    max_upload_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="largest upload or request body")
    max_image_pixels: int = Field(25_000_000, ge=784, description="largest decoded image (width x height)")
    # connection-level limits (service/protocol.py), held by the service itself, not left to a proxy
    header_max_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024,
                                  description="largest request header block; past it 431 and the connection closed")
    header_timeout_s: float = Field(30.0, gt=0, le=3600, description="seconds a request's headers may take to "
                                    "arrive; past it 408 and the connection closed")
    keepalive_timeout_s: float = Field(5.0, gt=0, le=3600,
                                       description="seconds an idle kept-alive connection stays open")
    max_connections: int = Field(2048, ge=1, le=1_000_000, description="open connections per worker; one more gets "
                                 "503 and is closed")
    digit_max_rounds: int = Field(8, ge=1, le=100, description="rejection-sampling rounds for digit=")
    # high, because an independent judge agreed with far fewer digit= samples at 0.9 (reports/REPORT.md)
    digit_min_confidence: float | None = Field(None, ge=0, le=1, description="classifier confidence a digit=/label= "
                                               "sample needs (default: its dataset's, MNIST 0.999, Fashion-MNIST 0.9)")
    api_key: SecretStr | None = Field(None, description="when set, Bearer key required (not on /healthz, /readyz)")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS; empty = CORS off")
    # off: every /sample through the FastAPI route (same bytes, slower; for comparison and debugging)
    fast_path: bool = Field(True, description="lean path for GET /sample png/npy (same responses)")
    torch_threads: int = Field(0, ge=0, le=256, description="intra-op threads of the inference thread; 0 = one per CPU core")
    log_level: LogLevel = Field("info", description="critical | error | warning | info | debug; --log-level overrides")
    log_format: Annotated[Literal["text", "json"], _folded] = Field("text", description="text | json (one JSON "
                                                                    "object per line)")
    # /metrics is public like the probes unless this is set (and DIGITGEN_API_KEY is)
    metrics_require_key: bool = Field(False, description="when true and api_key is set, /metrics needs the key")

    @field_validator("device")
    @classmethod
    def _device_syntax(cls, value: str) -> str:
        return device_syntax(value)

    @field_validator("api_key")
    @classmethod
    def _empty_key_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None


@lru_cache
def get_settings() -> Settings:
    return Settings()
