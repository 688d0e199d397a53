"""vae-exemplar: a trained VAE's networks with the exemplar prior of the training digits."""
import json

import pytest
import torch

from models import VAE, VAEConfig, load, save
from trainer.build_exemplar import ExemplarError
from trainer.common import to_unit
from trainer.data import synthetic_mnist
from trainer.presets import get_preset
from trainer.run import train_preset


@pytest.fixture
def base_dir(tmp_path):
    torch.manual_seed(0)
    config = VAEConfig(latent_dim=4, hidden_dims=(16,), prior="vamp", pseudo_inputs=3)
    save(VAE(config).eval(), config, {"preset": "vae"}, tmp_path / "base" / "vae.safetensors")
    return tmp_path / "base"


def test_the_exemplar_vae_keeps_the_networks_and_holds_every_training_digit(tmp_path, base_dir):
    data = synthetic_mnist(n_train=120, n_test=20)
    card = train_preset(get_preset("vae-exemplar"), data, torch.device("cpu"), tmp_path / "run",
                        weights_dir=tmp_path / "weights", progress=False, teacher_dir=base_dir)
    base = load(base_dir / "vae.safetensors")
    built = load(tmp_path / "weights" / "vae-exemplar.safetensors")
    for name, tensor in base.module.state_dict().items():
        if name.startswith(("encoder.", "decoder.")):
            assert torch.equal(built.module.state_dict()[name], tensor), name
    images = torch.cat([data.train_images, data.val_images])
    labels = torch.cat([data.train_labels, data.val_labels])
    mu, logvar = base.module.encode(to_unit(images))
    assert built.config.prior == "exemplar" and built.config.exemplars == len(images)
    assert torch.allclose(built.module.exemplar_mu.float(), mu, atol=2e-3, rtol=2e-3)  # half precision
    assert torch.equal(built.module.exemplar_labels.long(), labels.long())
    selection = card["built_from"].pop("exemplar_scale_selection")
    assert card["built_from"] == {"model": "vae", "weights_sha256": base.sha256, "exemplars": len(images)}
    # the temperature: the candidate whose sets taught the selection learners best on the validation split
    scales = get_preset("vae-exemplar").exemplar_scales
    assert list(selection["scales"]) == [str(s) for s in scales] and set(selection["real"]) == {"cnn-brief", "mlp"}
    best = max(scales, key=lambda s: min(selection["scales"][str(s)][k] - selection["real"][k] for k in ("cnn-brief", "mlp")))
    assert built.config.exemplar_scale == best == card["recipe"]["vae"]["exemplar_scale"]
    assert json.loads((tmp_path / "weights" / "vae-exemplar.json").read_text())["weights_sha256"] == built.sha256
    assert (tmp_path / "run" / "digits.png").is_file()  # one row per class


def test_without_candidates_the_posteriors_are_kept_as_they_are(tmp_path, base_dir):
    import dataclasses
    data = synthetic_mnist(n_train=60, n_test=10)
    preset = dataclasses.replace(get_preset("vae-exemplar"), exemplar_scales=())
    card = train_preset(preset, data, torch.device("cpu"), tmp_path / "run", weights_dir=tmp_path / "weights",
                        progress=False, teacher_dir=base_dir)
    assert "exemplar_scale_selection" not in card["built_from"]
    assert load(tmp_path / "weights" / "vae-exemplar.safetensors").config.exemplar_scale == 1.0


def test_a_missing_or_wrong_base_is_a_clear_error(tmp_path):
    data = synthetic_mnist(n_train=24, n_test=10)
    with pytest.raises(ExemplarError, match="not in"):
        train_preset(get_preset("vae-exemplar"), data, torch.device("cpu"), tmp_path / "run", progress=False,
                     teacher_dir=tmp_path)
    from models import Generator, GeneratorConfig
    config = GeneratorConfig(latent_dim=4, hidden_dim=8)
    save(Generator(config), config, {"preset": "vae"}, tmp_path / "vae.safetensors")
    with pytest.raises(ExemplarError, match="not a VAE"):
        train_preset(get_preset("vae-exemplar"), data, torch.device("cpu"), tmp_path / "run", progress=False,
                     teacher_dir=tmp_path)


def test_a_temperature_changed_afterwards_draws_what_building_at_it_draws(base_dir):
    from models import synthetic
    from trainer.build_exemplar import at_scale, build_exemplar_vae
    base = load(base_dir / "vae.safetensors").module
    data = synthetic_mnist(n_train=60, n_test=10)
    built = build_exemplar_vae(base, data.train_images, data.train_labels, 2.0)
    rescaled = at_scale(build_exemplar_vae(base, data.train_images, data.train_labels), 2.0)
    assert rescaled.config.exemplar_scale == 2.0
    assert torch.equal(synthetic.make(rescaled, 50, 3)[0], synthetic.make(built, 50, 3)[0])
