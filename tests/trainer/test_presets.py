"""Every recipe states its dataset; the fashion-* presets are the MNIST recipes on Fashion-MNIST."""
import pytest

from models.datasets import DATASETS
from trainer.presets import FASHION_EPOCHS, FASHION_OF, FASHION_RECIPE, PRESETS, get_preset


def test_every_preset_names_a_known_dataset():
    assert {p.dataset for p in PRESETS.values()} <= set(DATASETS)
    assert {name for name, p in PRESETS.items() if p.dataset == "fashion"} == {f"fashion-{n}" for n in FASHION_OF}


@pytest.mark.parametrize("name", FASHION_OF)
def test_a_fashion_preset_is_its_mnist_recipe_on_fashion(name):
    mnist, fashion = PRESETS[FASHION_RECIPE.get(name, name)].to_dict(), PRESETS[f"fashion-{name}"].to_dict()
    changed = {k for k in mnist if mnist[k] != fashion[k]}
    expected = {"name", "dataset", "description"} | ({"epochs"} if name in FASHION_EPOCHS else set())
    assert changed == expected
    assert fashion["description"].startswith("On Fashion-MNIST: ")


def test_another_dataset_gives_that_datasets_preset_of_the_recipe():
    assert get_preset("gan", dataset="fashion").name == "fashion-gan"
    assert get_preset("fashion-vae", dataset="mnist").to_dict() == PRESETS["vae-normal"].to_dict()
    twin = get_preset("gan-bce", dataset="fashion")  # no bundled twin: made on the spot
    assert (twin.name, twin.dataset, twin.gan_loss) == ("fashion-gan-bce", "fashion", "bce")
    assert get_preset("gan", dataset="mnist").name == "gan"
    # fashion-gan is gan-wide's recipe, both ways
    assert get_preset("gan-wide", dataset="fashion").to_dict() == PRESETS["fashion-gan"].to_dict()
    assert get_preset("fashion-gan", dataset="mnist").to_dict() == PRESETS["gan-wide"].to_dict()


def test_overrides_do_not_leak_into_the_presets():
    preset = get_preset("fashion-gan", epochs=1)
    assert (preset.dataset, preset.epochs) == ("fashion", 1)
    assert (PRESETS["fashion-gan"].dataset, PRESETS["fashion-gan"].epochs) == ("fashion", 70)
    assert preset.generator is not PRESETS["fashion-gan"].generator  # a deep copy


def test_a_recipe_recorded_before_new_fields_existed_is_the_same_recipe():
    from trainer.presets import with_defaults
    preset = get_preset("vae-normal")
    recorded = preset.to_dict()
    del recorded["kl_warmup_epochs"]  # written before the field existed
    for key in ("encoder", "decoder", "channels", "prior", "pseudo_inputs"):
        del recorded["vae"][key]
    assert with_defaults(recorded) == preset.to_dict()
    recorded["lr"] = 0.5
    assert with_defaults(recorded) != preset.to_dict()  # a real difference still shows


def test_a_run_that_ends_before_the_warm_restart_is_a_plain_cosine():
    assert PRESETS["vae"].restart == (150, 0.5) and PRESETS["vae"].epochs == 250
    assert get_preset("vae", epochs=200).restart == (150, 0.5)
    assert get_preset("vae", epochs=150).restart is None  # the first cycle alone
    assert get_preset("vae", epochs=10, restart=[2, 0.25]).restart == (2, 0.25)  # a list is the same restart
    with pytest.raises(ValueError, match="inside"):
        get_preset("vae", epochs=10, restart=(10, 0.5))
    with pytest.raises(ValueError, match="cosine-scheduled VAE"):
        get_preset("classifier", restart=(2, 0.5))


def test_the_warm_restart_schedule_decays_twice():
    import torch

    from trainer.common import make_scheduler
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer, reference_optimizer = torch.optim.SGD([param], lr=1.0), torch.optim.SGD([param], lr=1.0)
    scheduler = make_scheduler(optimizer, "cosine", 30, restart=(20, 0.5))
    reference = make_scheduler(reference_optimizer, "cosine", 20)  # the plain cosine of the first cycle
    rates = []
    for _ in range(30):
        rates.append(optimizer.param_groups[0]["lr"])
        if len(rates) <= 20:
            assert rates[-1] == pytest.approx(reference_optimizer.param_groups[0]["lr"], abs=1e-12)
        optimizer.step(), reference_optimizer.step(), scheduler.step(), reference.step()
    assert rates[0] == 1.0 and rates[19] < 0.01 and rates[20] == 0.5 and rates[29] < 0.02
    assert all(a >= b for a, b in zip(rates[20:], rates[21:]))  # the second cycle only falls
    with pytest.raises(ValueError, match="inside"):
        make_scheduler(optimizer, "cosine", 30, restart=(30, 0.5))
