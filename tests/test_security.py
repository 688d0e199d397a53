"""Static checks of the security rules: no pickle-based loading anywhere in the source."""
import re

from tests.conftest import ROOT

SOURCES = [p for d in ("models", "service", "trainer") for p in (ROOT / d).rglob("*.py")]


def pickle_offenders(text: str) -> list[str]:
    """What in `text` could load pickled code: pickle itself, numpy's allow_pickle, and torch.load
    without weights_only=True in the call (with it, only tensors and plain containers load)."""
    found = [pattern for pattern in (r"\bimport pickle\b", r"pickle\.loads?\(", r"allow_pickle=True",
                                     r"weights_only=False") if re.search(pattern, text)]
    for call in re.finditer(r"torch\.load\(([^()]*(\([^()]*\))?)*\)", text):
        if "weights_only=True" not in call.group(0):
            found.append(call.group(0))
    return found


def test_the_check_itself():
    assert pickle_offenders("x = torch.load(path)") == ["torch.load(path)"]
    assert pickle_offenders("torch.load(Path(p), map_location='cpu')") != []
    assert pickle_offenders("torch.load(Path(p), map_location='cpu', weights_only=True)") == []
    assert pickle_offenders("import pickle") and pickle_offenders("np.load(f, allow_pickle=True)")


def test_no_pickle_loading():
    offenders = [f"{path.relative_to(ROOT)}: {what}" for path in SOURCES for what in pickle_offenders(path.read_text())]
    assert not offenders, offenders


def test_dependencies_are_pinned():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    unpinned = [s for s in specs if "==" not in s]
    assert not unpinned, unpinned
