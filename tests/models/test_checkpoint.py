import json

import pytest
import torch
from safetensors import safe_open

from models import (CheckpointError, ClassifierConfig, DigitClassifier, Generator, GeneratorConfig, VAE, VAEConfig,
                    load, save)


@pytest.mark.parametrize("module, config", [
    (VAE(VAEConfig()), VAEConfig()),
    (Generator(GeneratorConfig(arch="dcgan", hidden_dim=16, output="tanh")), GeneratorConfig(arch="dcgan", hidden_dim=16, output="tanh")),
    (DigitClassifier(ClassifierConfig(channels=(4, 8))), ClassifierConfig(channels=(4, 8))),
])
def test_round_trip_gives_identical_outputs(tmp_path, module, config):
    module.eval()
    path = tmp_path / "m.safetensors"
    digest = save(module, config, {"preset": "test"}, path)
    loaded = load(path, "cpu", require_card=True)
    assert loaded.sha256 == digest
    assert loaded.card["weights_sha256"] == digest
    assert not loaded.module.training
    x = torch.randn(3, 16) if not isinstance(module, DigitClassifier) else torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        if isinstance(module, DigitClassifier):
            assert torch.equal(module(x), loaded.module(x))
        else:
            assert torch.equal(module.generate(x), loaded.module.generate(x))


def test_config_lives_in_the_safetensors_header(tmp_path):
    path = tmp_path / "v.safetensors"
    save(VAE(VAEConfig(latent_dim=8)), VAEConfig(latent_dim=8), None, path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    header = json.loads(meta["digitgen"])
    assert header["kind"] == "vae" and header["config"]["latent_dim"] == 8
    assert not path.with_suffix(".json").exists()  # no card asked for


def _saved(tmp_path):
    path = tmp_path / "gan.safetensors"
    save(Generator(GeneratorConfig()), GeneratorConfig(), {"preset": "x"}, path)
    return path


def test_truncated_file_is_a_clear_error(tmp_path):
    path = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="gan.safetensors: not a readable safetensors file"):
        load(path)


def test_corrupted_bytes_do_not_match_the_card(tmp_path):
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="gan.safetensors: SHA-256 .* does not match its model card"):
        load(path)


def test_card_describing_another_model_is_refused(tmp_path):
    path = _saved(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    card["config"]["hidden_dim"] = 999
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="different model"):
        load(path)


def test_unreadable_card_and_missing_card(tmp_path):
    path = _saved(tmp_path)
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="gan.json: unreadable model card"):
        load(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="model card gan.json is missing"):
        load(path, require_card=True)


def test_weights_of_the_wrong_shape_are_refused(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "gan.safetensors"
    # the header says hidden_dim=300 but the tensors come from a 20-wide generator
    small = Generator(GeneratorConfig(hidden_dim=20))
    metadata = {"digitgen": json.dumps({"format": "1", "kind": "generator",
                                        "config": vars(GeneratorConfig(hidden_dim=300))})}
    save_file({k: v.contiguous() for k, v in small.state_dict().items()}, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match="weights do not fit the generator config"):
        load(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nothing.safetensors: weights file not found"):
        load(tmp_path / "nothing.safetensors")


def test_same_weights_same_bytes_in_every_process(tmp_path):
    """safetensors orders a multi-key metadata map differently per process; ours has one key."""
    import subprocess
    import sys
    code = ("import sys, torch; from models import VAE, VAEConfig, save; torch.manual_seed(0); "
            "save(VAE(VAEConfig()), VAEConfig(), None, sys.argv[1])")
    digests = set()
    for i in range(4):
        path = tmp_path / f"{i}.safetensors"
        subprocess.run([sys.executable, "-c", code, str(path)], check=True)
        digests.add(path.read_bytes())
    assert len(digests) == 1


def test_family_of_kind():
    from models.checkpoint import KINDS, family_of
    from trainer.presets import PRESETS
    assert {kind: family_of(kind) for kind in KINDS} == {"vae": "vae", "generator": "gan", "classifier": "classifier"}
    assert {family_of(kind) for kind in KINDS} == {p.family for p in PRESETS.values()}
    with pytest.raises(ValueError, match="unknown checkpoint kind"):
        family_of("gan")  # a family, not a kind


def test_bundled_cards_agree_on_kind_and_family():
    from models import BUNDLED_WEIGHTS
    from models.checkpoint import family_of
    for path in sorted(BUNDLED_WEIGHTS.glob("*.safetensors")):
        ckpt = load(path, require_card=True)
        assert ckpt.card["kind"] == ckpt.kind and ckpt.card["family"] == ckpt.family == family_of(ckpt.kind)
