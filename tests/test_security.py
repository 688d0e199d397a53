"""Static checks of the security rules: no pickle-based loading anywhere in the source."""
import re

from tests.conftest import ROOT

SOURCES = [p for d in ("models", "service", "trainer") for p in (ROOT / d).rglob("*.py")]


def test_no_pickle_loading():
    offenders = []
    for path in SOURCES:
        text = path.read_text()
        for pattern in (r"torch\.load\(", r"\bimport pickle\b", r"pickle\.loads?\(", r"allow_pickle=True",
                        r"weights_only=False"):
            if re.search(pattern, text):
                offenders.append(f"{path.relative_to(ROOT)}: {pattern}")
    assert not offenders, offenders


def test_dependencies_are_pinned():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    unpinned = [s for s in specs if "==" not in s]
    assert not unpinned, unpinned
