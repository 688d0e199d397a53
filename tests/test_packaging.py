"""What an installed digitgen carries: the wheel `pip install .` builds holds the page's files and every
bundled model, so a service installed from it serves the same as a checkout."""
import shutil
import subprocess
import sys
import zipfile

from tests.conftest import ROOT

NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "data", "runs", "build", "*.egg-info", "__pycache__", ".whl")


def test_the_wheel_carries_the_page_and_the_bundled_weights(tmp_path):
    source = tmp_path / "source"  # a copy: the build writes its build/ folder next to the sources
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("digitgen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p for folder in ("service/static", "models/weights") for p in (ROOT / folder).iterdir()
               if not p.name.startswith(".")]
    assert shipped and {str(p.relative_to(ROOT)) for p in shipped} <= names
    assert {"service/main.py", "models/checkpoint.py", "digitgen_client/client.py"} <= names
