"""`train --resume`: a run stopped after an epoch and resumed ends bit for bit where the same run
without the stop ends; a state made by another recipe is refused."""
import json

import pytest
import torch
from safetensors.torch import load_file

from trainer import resume as resume_module
from trainer.cli import main
from trainer.data import synthetic_mnist
from trainer.presets import get_preset
from trainer.resume import STATE_FILE, ResumeError
from trainer.run import train_preset

# a class-conditional GAN with EMA, its distilled copy, a cosine-scheduled binarised VAE, a shifted
# classifier: every kind of state the loops keep (two optimisers, EMA buffers, schedulers, the
# batch/noise generator)
PRESETS = ["gan-wide", "gan", "vae-normal", "vae", "classifier"]  # vae: VampPrior, KL warm-up, IWAE


class Stop(Exception):
    pass


def stop_after(monkeypatch, epochs: int):
    """Make RunState.save raise once `epochs` epochs are saved: the run dies as if killed."""
    save = resume_module.RunState.save

    def save_then_stop(self, epoch, history):
        save(self, epoch, history)
        if epoch == epochs:
            raise Stop
    monkeypatch.setattr(resume_module.RunState, "save", save_then_stop)


def straight_and_resumed(preset, tmp_path, monkeypatch, stop_epoch: int) -> tuple[dict, dict]:
    """The cards of `preset` run straight (tmp_path/straight) and run, killed after `stop_epoch`, then
    resumed (tmp_path/stopped), on the same synthetic data."""
    data = synthetic_mnist(n_train=96, n_test=40)
    straight = train_preset(preset, data, torch.device("cpu"), tmp_path / "straight", max_steps=3, progress=False)
    with monkeypatch.context() as patch:
        stop_after(patch, stop_epoch)
        with pytest.raises(Stop):
            train_preset(preset, data, torch.device("cpu"), tmp_path / "stopped", max_steps=3, progress=False)
    assert (tmp_path / "stopped" / STATE_FILE).is_file()
    resumed = train_preset(preset, data, torch.device("cpu"), tmp_path / "stopped", max_steps=3, progress=False,
                           resume=True)
    return straight, resumed


@pytest.mark.parametrize("name", PRESETS)
def test_a_resumed_run_ends_where_the_uninterrupted_one_does(tmp_path, monkeypatch, name):
    straight, resumed = straight_and_resumed(get_preset(name, epochs=3, batch_size=32), tmp_path, monkeypatch, 1)

    assert resumed["weights_sha256"] == straight["weights_sha256"]
    assert resumed["final_losses"] == straight["final_losses"]
    a = load_file(tmp_path / "straight" / f"{name}.safetensors")
    b = load_file(tmp_path / "stopped" / f"{name}.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the card says the run came in two segments, and counts both
    segments = resumed["training"]["segments"]
    assert [(s["from_epoch"], s["to_epoch"]) for s in segments] == [(1, 1), (2, 3)]
    assert resumed["training"]["seconds"] >= sum(s["seconds"] for s in segments) - 0.2
    history = json.loads((tmp_path / "stopped" / "history.json").read_text())
    straight_history = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert history == straight_history


def test_resume_refuses_a_state_from_another_recipe(tmp_path):
    data = synthetic_mnist(n_train=64, n_test=20)
    train_preset(get_preset("vae-seed", epochs=1, batch_size=32), data, torch.device("cpu"), tmp_path,
                 max_steps=2, progress=False)
    with pytest.raises(ResumeError, match="differs in: lr"):
        train_preset(get_preset("vae-seed", epochs=1, batch_size=32, lr=1e-3), data, torch.device("cpu"), tmp_path,
                     max_steps=2, progress=False, resume=True)


def test_a_cosine_run_is_not_extended(tmp_path):
    """More epochs would have changed every step of a cosine schedule already taken."""
    data = synthetic_mnist(n_train=64, n_test=20)
    train_preset(get_preset("vae-normal", epochs=1, batch_size=32), data, torch.device("cpu"), tmp_path,
                 max_steps=2, progress=False)
    with pytest.raises(ResumeError, match="differs in: epochs"):
        train_preset(get_preset("vae-normal", epochs=2, batch_size=32), data, torch.device("cpu"), tmp_path,
                     max_steps=2, progress=False, resume=True)


def test_a_finished_cosine_run_continues_into_its_warm_restart(tmp_path):
    """A cosine run of E epochs resumed as the recipe with a warm restart at epoch E ends where that
    recipe run straight ends (to the rounding of the closed-form against the recursive cosine)."""
    data = synthetic_mnist(n_train=96, n_test=40)
    restarted = get_preset("vae", epochs=3, batch_size=32, restart=(2, 0.5))
    straight = train_preset(restarted, data, torch.device("cpu"), tmp_path / "straight", max_steps=3, progress=False)
    first = get_preset("vae", epochs=2, batch_size=32)  # ends before the restart: the plain cosine
    assert first.restart is None
    train_preset(first, data, torch.device("cpu"), tmp_path / "continued", max_steps=3, progress=False)
    continued = train_preset(restarted, data, torch.device("cpu"), tmp_path / "continued", max_steps=3,
                             progress=False, resume=True)
    a = load_file(tmp_path / "straight" / "vae.safetensors")
    b = load_file(tmp_path / "continued" / "vae.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert continued["final_losses"] == pytest.approx(straight["final_losses"], rel=1e-5)
    assert list(continued["recipe"]["restart"]) == [2, 0.5] and continued["recipe"]["epochs"] == 3
    assert [(s["from_epoch"], s["to_epoch"]) for s in continued["training"]["segments"]] == [(1, 2), (3, 3)]
    # a restart anywhere but where the saved run ended would change steps already taken
    train_preset(first, data, torch.device("cpu"), tmp_path / "early", max_steps=3, progress=False)
    with pytest.raises(ResumeError, match="differs in: epochs, restart"):
        train_preset(get_preset("vae", epochs=3, batch_size=32, restart=(1, 0.5)), data, torch.device("cpu"),
                     tmp_path / "early", max_steps=3, progress=False, resume=True)


def test_a_run_stopped_after_its_restart_resumes_bit_for_bit(tmp_path, monkeypatch):
    """The warm-restart schedule's own state (a LambdaLR) round-trips through resume.pt."""
    preset = get_preset("vae", epochs=3, batch_size=32, restart=(1, 0.5))
    straight, resumed = straight_and_resumed(preset, tmp_path, monkeypatch, 2)
    assert resumed["weights_sha256"] == straight["weights_sha256"]


def test_the_continued_schedule_takes_up_at_the_restart():
    """A finished cosine's optimiser and step count, carried into the restart schedule: the rates from
    there are the ones the restart schedule run from the start would give."""
    from trainer.common import make_scheduler
    from trainer.resume import _continue_at

    def optimizer():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    plain, straight = optimizer(), optimizer()
    plain_schedule = make_scheduler(plain, "cosine", 4)
    straight_schedule = make_scheduler(straight, "cosine", 8, restart=(4, 0.5))
    for _ in range(4):
        plain.step(), plain_schedule.step(), straight.step(), straight_schedule.step()
    continued = optimizer()
    continued_schedule = make_scheduler(continued, "cosine", 8, restart=(4, 0.5))
    continued.load_state_dict(plain.state_dict())
    _continue_at(continued_schedule, plain_schedule.state_dict()["last_epoch"])
    for _ in range(4):
        assert continued.param_groups[0]["lr"] == pytest.approx(straight.param_groups[0]["lr"], abs=1e-12)
        continued.step(), continued_schedule.step(), straight.step(), straight_schedule.step()
    assert continued_schedule.get_last_lr() == pytest.approx(straight_schedule.get_last_lr(), abs=1e-12)


def test_a_constant_rate_run_extended_equals_the_longer_run(tmp_path):
    """`--resume --epochs N` past the end of a finished constant-rate run: the same as running N straight."""
    data = synthetic_mnist(n_train=96, n_test=40)
    straight = train_preset(get_preset("gan-wide", epochs=3, batch_size=32), data, torch.device("cpu"),
                            tmp_path / "straight", max_steps=3, progress=False)
    train_preset(get_preset("gan-wide", epochs=2, batch_size=32), data, torch.device("cpu"), tmp_path / "extended",
                 max_steps=3, progress=False)
    extended = train_preset(get_preset("gan-wide", epochs=3, batch_size=32), data, torch.device("cpu"),
                            tmp_path / "extended", max_steps=3, progress=False, resume=True)
    assert extended["weights_sha256"] == straight["weights_sha256"]
    assert extended["recipe"]["epochs"] == 3
    assert [(s["from_epoch"], s["to_epoch"]) for s in extended["training"]["segments"]] == [(1, 2), (3, 3)]
    # fewer epochs than already run is not an extension
    with pytest.raises(ResumeError, match="differs in: epochs"):
        train_preset(get_preset("gan-wide", epochs=2, batch_size=32), data, torch.device("cpu"), tmp_path / "extended",
                     max_steps=3, progress=False, resume=True)


def test_resume_without_a_saved_state_says_so(tmp_path, capsys):
    code = main(["train", "--preset", "vae-seed", "--dry-run", "--no-progress", "--resume", "--out", str(tmp_path)])
    assert code == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_the_state_file_loads_without_pickled_code(tmp_path):
    train_preset(get_preset("gan-seed", epochs=1, batch_size=32), synthetic_mnist(n_train=64, n_test=20),
                 torch.device("cpu"), tmp_path, max_steps=2, progress=False)
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)  # raises on anything but plain data
    assert state["epoch"] == 1 and set(state["modules"]) == {"generator", "discriminator"}


def test_a_state_saved_before_new_recipe_fields_existed_resumes(tmp_path):
    """A run started before a Preset or config field was added recorded a recipe without it; resuming
    with the field at its default is the same recipe, and a real change is still refused."""
    from trainer.presets import get_preset
    from trainer.resume import RunState
    module = torch.nn.Linear(2, 2)

    def state(preset):
        return RunState(tmp_path, preset, modules={"m": module}, optimizers={}, generators={})

    preset = get_preset("vae-normal", epochs=3)
    state(preset).save(1, {"epoch": [1]})
    saved = torch.load(tmp_path / STATE_FILE, weights_only=True)
    del saved["recipe"]["kl_warmup_epochs"], saved["recipe"]["restart"]
    saved["recipe"]["description"] = "the same recipe, worded as it was then"  # prose, not a setting
    for key in ("encoder", "decoder", "channels", "prior", "pseudo_inputs"):
        del saved["recipe"]["vae"][key]
    torch.save(saved, tmp_path / STATE_FILE)
    assert state(preset).resume({})[0] == 2
    with pytest.raises(ResumeError, match="differs in: kl_warmup_epochs"):
        state(get_preset("vae-normal", epochs=3, kl_warmup_epochs=5)).resume({})
