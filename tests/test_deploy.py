"""No Docker engine runs in CI: parse the container files and check what matters."""
import re

import yaml

from tests.conftest import ROOT


def dockerfile_instructions():
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_dockerfile():
    lines = dockerfile_instructions()
    froms = [l for l in lines if l.startswith("FROM ")]
    assert froms and all("python:3.11-slim" in l for l in froms)
    assert any(re.match(r"USER (?!root)\w+", l) for l in lines), "must not run as root"
    users = [l for l in lines if l.startswith("USER ")]
    assert users[-1] != "USER root"
    health = [l for l in lines if l.startswith("HEALTHCHECK")]
    assert health and "/readyz" in health[0]
    assert "EXPOSE 8000" in lines
    cmd = next(l for l in lines if l.startswith("CMD "))
    assert '"service"' in cmd and '"0.0.0.0"' in cmd
    assert any(l.startswith("RUN pip install .") for l in lines)
    assert (ROOT / ".dockerignore").read_text().count(".venv")


def test_weights_ship_as_package_data():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'models = ["weights/*.safetensors", "weights/*.json"]' in text


def test_compose_cpu_default_and_gpu_reservation():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    cpu = services["digitgen"]
    assert "profiles" not in cpu  # starts by default
    assert cpu["ports"] == ["8000:8000"]
    assert cpu["environment"]["DIGITGEN_DEVICE"] == "cpu"
    assert "/readyz" in " ".join(cpu["healthcheck"]["test"])
    gpu = services["digitgen-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["environment"]["DIGITGEN_DEVICE"] == "cuda"
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "/readyz" in " ".join(gpu["healthcheck"]["test"])


def test_compose_scale_out_behind_nginx():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "ports" not in services["digitgen-replica"]  # only nginx is published, so --scale works
    nginx = services["nginx"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server digitgen-replica:8000" in conf and "proxy_next_upstream" in conf


# ---- Makefile and packaging ------------------------------------------------------------------

def make_dry_run(*targets: str) -> list[str]:
    """The commands `make` would run (-n: print only; -B: as if nothing were built yet)."""
    import subprocess
    result = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), *targets], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return [line.strip() for line in result.stdout.splitlines() if line.strip() and not line.startswith("make")]


def test_make_train_puts_the_weights_where_the_service_loads_them():
    commands = [c for c in make_dry_run("train") if " -m trainer train " in c]
    assert len(commands) == 5
    assert all(c.endswith("--weights-dir models/weights") for c in commands), commands


def test_make_bench_runs_the_serving_benchmark():
    assert any("-m benchmarks.serve" in c for c in make_dry_run("bench"))


def test_make_serve_installs_the_service_only():
    serve, test = make_dry_run("serve"), make_dry_run("test")
    for commands in (serve, test):  # both create .venv when it is missing
        assert any("-m venv .venv" in c for c in commands)
    installs = [c for c in serve if "pip install" in c and "--upgrade pip" not in c]
    assert installs == [".venv/bin/python -m pip install -q -e ."]
    assert not any("[train" in c for c in serve)
    assert any("pip install -q -e '.[train,dev]'" in c for c in test)
    assert serve[-1].endswith("-m service --host 127.0.0.1 --port 8000")


def test_every_phony_target_has_a_rule():
    text = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split()
    for target in phony:
        assert re.search(rf"^{re.escape(target)}:", text, re.M), target


def test_pyproject_packaging_metadata():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()
    assert project["license-files"] == ["LICENSE"]
    assert any(l.startswith("COPY ") and " LICENSE " in l for l in dockerfile_instructions())  # the build needs it
    assert set(project["urls"]) == {"Homepage", "Documentation", "Issues"}
    assert all(url.startswith("https://github.com/digitgen/digitgen") for url in project["urls"].values())
    assert project["classifiers"]
    assert project["scripts"] == {"digitgen-serve": "service.__main__:main", "digitgen-train": "trainer.cli:main",
                                  "digitgen-client": "digitgen_client.cli:main"}
    names = [re.split(r"[=<>\[ ]", d, maxsplit=1)[0] for d in project["dependencies"]]
    train = [re.split(r"[=<>\[ ]", d, maxsplit=1)[0] for d in project["optional-dependencies"]["train"]]
    for training_only in ("torchvision", "matplotlib", "scikit-learn", "tqdm", "torchmetrics"):
        assert training_only not in names and training_only in train
    import service.__main__
    import trainer.cli
    assert callable(service.__main__.main) and callable(trainer.cli.main)


def test_the_service_does_not_import_training_only_modules():
    """`pip install .` (the container image) has none of the train extra. Here they are installed,
    and torch itself imports tqdm when it can (torch.hub), so the check runs with them hidden, as in
    a service-only install: importing the service must neither need nor load any of them."""
    import subprocess
    import sys
    code = """
import sys
TRAINING_ONLY = {'torchvision', 'matplotlib', 'sklearn', 'tqdm', 'torchmetrics'}
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in TRAINING_ONLY:
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
import service.main, service.__main__
print(sorted(m for m in sys.modules if m.split('.')[0] in TRAINING_ONLY))
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
