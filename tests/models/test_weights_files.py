"""The bundled weights: each loads with safetensors alone, and is world-readable for the container user."""
import json
import stat

from safetensors import safe_open

from tests.conftest import BUNDLED, BUNDLED_NAMES


def test_bundled_checkpoints_load_with_safetensors_alone():
    for name in BUNDLED_NAMES:
        path = BUNDLED / f"{name}.safetensors"
        with safe_open(str(path), framework="numpy") as f:
            header = json.loads(f.metadata()["digitgen"])
            assert header["kind"] in ("vae", "generator", "classifier")
            assert len(list(f.keys())) > 0
        assert path.stat().st_mode & stat.S_IROTH, f"{path.name} is not world-readable"
        card = json.loads(path.with_suffix(".json").read_text())
        for key in ("preset", "recipe", "epochs", "seed", "data", "weights_sha256", "training", "final_losses",
                    "metrics"):
            assert key in card, (name, key)
