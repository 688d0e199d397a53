"""The peers benchmark serves the same work as digitgen: its shared generator code gives the bytes of
digitgen's seeded /sample answers, and every target it measures points at an app that exists. (The
frameworks themselves are installed by the benchmark, from PyPI, never by the tests.)"""
import ast
import sys
from pathlib import Path

import pytest

from benchmarks import peers
from tests.conftest import ROOT

APPS = ROOT / "benchmarks" / "peers"


@pytest.fixture()
def digitgen_gan(monkeypatch):
    monkeypatch.syspath_prepend(str(APPS))  # the apps import it as a script folder's module
    sys.modules.pop("digitgen_gan", None)
    import digitgen_gan
    return digitgen_gan


def test_the_peers_answer_is_digitgens_seeded_sample(bundled_client, digitgen_gan):
    generator = digitgen_gan.load_generator()
    for seed in (0, 1, 12345):
        expected = bundled_client.get("/sample", params={"model": "gan", "seed": seed}).content
        assert digitgen_gan.pngs(generator, digitgen_gan.latent(seed, generator.latent_dim)) == [expected]


def test_an_unseeded_request_draws_a_fresh_latent(digitgen_gan):
    a, b = digitgen_gan.latent(None, 16), digitgen_gan.latent(None, 16)
    assert a.shape == (1, 16) and not a.equal(b)


def test_every_target_runs_a_file_that_is_there_with_a_pinned_framework():
    for target in peers.TARGETS:
        if target.peer is None:
            continue
        assert target.peer in peers.PINS and all("==" in pin for pin in peers.PINS[target.peer])
        args = target.args
        script = next((a for a in args if a.endswith(".py")), None)
        module = args[args.index("serve") + 1].split(":")[0] + ".py" if "serve" in args else None
        path = ROOT / script if script else APPS / module
        assert path.is_file(), path
        ast.parse(path.read_text())  # at least valid Python for the peer's interpreter


def test_the_reference_answers_come_from_digitgens_own_route():
    answers = peers.reference_pngs()
    assert set(answers) == set(peers.CHECKED_SEEDS)
    assert all(a.startswith(b"\x89PNG") for a in answers.values())
    assert len(set(answers.values())) == len(answers)  # different seeds, different digits
