"""Schema fuzzing: schemathesis generates requests from the service's own /openapi.json and sends
them to a real uvicorn on loopback. Bounded (examples per operation) and seeded, so CI repeats.

The schemathesis CLI is used rather than its pytest plugin, which does not support pytest 9 yet."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import live_server, write_tiny_weights

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_every_check_passes(tmp_path):
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists():
        cli = shutil.which("schemathesis")
    if cli is None:
        pytest.fail("schemathesis is not installed (it is in the dev extra)")
    weights = write_tiny_weights(tmp_path / "weights")
    env = {"DIGITGEN_WEIGHTS_DIR": str(weights), "DIGITGEN_MAX_SAMPLES": "64", "DIGITGEN_MAX_LATENTS": "64",
           "DIGITGEN_MAX_DATASET": "2000"}  # small limits: schemathesis tries the largest values allowed
    with live_server(env) as (base, proc):
        result = subprocess.run(
            [str(cli), "--config-file", str(CONFIG), "run", f"{base}/openapi.json", "--checks", "all", "--max-examples", "25", "--seed", "1",
             "--generation-deterministic", "--request-timeout", "20", "--no-color"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert proc.poll() is None, "the server died under fuzzing"
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
