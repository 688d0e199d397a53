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


def dockerfile_args() -> dict[str, str]:
    return dict(l[len("ARG "):].split("=", 1) for l in dockerfile_instructions() if l.startswith("ARG ") and "=" in l)


def test_dockerfile_picks_the_torch_flavour_with_a_build_argument():
    lines = dockerfile_instructions()
    args = dockerfile_args()
    assert args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"  # the default image is CPU-only
    import tomllib
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_pin = next(d for d in deps if d.startswith("torch=="))
    assert f"torch=={args['TORCH_VERSION']}" == torch_pin  # `pip install .` then finds torch satisfied
    runs = [l for l in lines if l.startswith("RUN ")]
    torch_install = next(i for i, l in enumerate(runs) if '--index-url "${TORCH_INDEX}"' in l)
    assert '"torch==${TORCH_VERSION}"' in runs[torch_install]
    project_install = next(i for i, l in enumerate(runs) if l.startswith("RUN pip install ."))
    assert torch_install < project_install
    assert not any("[train" in l or "[dev" in l for l in lines)  # no training extras in the image
    # the CUDA build's argument, as compose passes it, is documented where people build
    assert "--build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu130" in (ROOT / "Dockerfile").read_text()


def test_dockerfile_copies_every_package_the_install_needs():
    import tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()
                      and any(re.fullmatch(pattern.replace("*", ".*"), p.name)
                              for pattern in config["tool"]["setuptools"]["packages"]["find"]["include"]))
    assert {"models", "service", "trainer", "digitgen_client"} <= set(packages)
    copied = set()
    for line in dockerfile_instructions():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(p.rstrip("/").removeprefix("./") for p in line.split()[1:-1])
    for needed in [*packages, "pyproject.toml", "README.md", "LICENSE"]:
        assert needed in copied, needed
    ignored = {l.strip().rstrip("/") for l in (ROOT / ".dockerignore").read_text().splitlines()
               if l.strip() and not l.startswith("#")}
    assert not ignored & copied, ignored & copied


def test_dockerfile_multistage_nonroot_and_drains():
    lines = dockerfile_instructions()
    froms = [l for l in lines if l.startswith("FROM ")]
    assert len(froms) >= 2 and froms[0].endswith(" AS build")
    assert any(l.startswith("COPY --from=build /opt/venv") for l in lines)
    assert lines.index(next(l for l in lines if l.startswith("COPY --from=build"))) > lines.index(froms[-1])
    final = lines[lines.index(froms[-1]):]
    assert any("useradd" in l and "--uid 10001" in l for l in final)
    assert [l for l in final if l.startswith("USER ")][-1] == "USER 10001:10001"  # numeric: runAsNonRoot can check
    assert "STOPSIGNAL SIGTERM" in final
    assert any(l.startswith("HEALTHCHECK") and "/readyz" in l for l in final)
    cmd = next(l for l in final if l.startswith("CMD "))
    assert '"--graceful-timeout", "10"' in cmd


def test_compose_images_per_flavour_and_drain_time():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("digitgen", "digitgen-replica"):
        assert services[name]["image"] == "digitgen:0.1.0-cpu"
        assert services[name]["build"]["args"]["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    gpu = services["digitgen-gpu"]
    assert gpu["image"] == "digitgen:0.1.0-cuda"
    assert gpu["build"]["args"]["TORCH_INDEX"] == "https://download.pytorch.org/whl/cu130"
    assert gpu["build"]["context"] == "."
    cmd = next(l for l in dockerfile_instructions() if l.startswith("CMD "))
    drain = float(re.search(r'"--graceful-timeout", "([\d.]+)"', cmd).group(1))
    for name in ("digitgen", "digitgen-gpu", "digitgen-replica"):
        grace = services[name]["stop_grace_period"]
        assert float(grace.rstrip("s")) > drain, name
        assert services[name]["read_only"] is True and "/tmp" in services[name]["tmpfs"]


def test_compose_nginx_is_pinned_and_health_checked():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    nginx = compose["services"]["nginx"]
    match = re.fullmatch(r"nginx:(\d+)\.(\d+)\.(\d+)(-alpine)?", nginx["image"])
    assert match, f"{nginx['image']}: pin a release (x.y.z), not a moving tag"
    # the upstream `server ... resolve` parameter of deploy/nginx.conf is in open-source nginx from 1.27.3
    assert tuple(map(int, match.groups()[:3])) >= (1, 27, 3)
    health = nginx["healthcheck"]
    test = " ".join(health["test"])
    assert health["test"][0] == "CMD" and "http://127.0.0.1:8080/nginx-health" in test
    assert {"interval", "timeout", "retries"} <= set(health)
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"location = /nginx-health \{[^}]*return 200", conf)
    assert "listen 8080;" in conf and nginx["ports"] == ["8080:8080"]


# ---- Makefile and packaging ------------------------------------------------------------------

def make_dry_run(*targets: str) -> list[str]:
    """The commands `make` would run (-n: print only; -B: as if nothing were built yet)."""
    import subprocess
    result = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), *targets], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return [line.strip() for line in result.stdout.splitlines() if line.strip() and not line.startswith("make")]


def test_make_train_trains_the_catalogue_into_the_folder_the_service_loads():
    from trainer.presets import BUNDLED, PRESETS
    assert [c for c in make_dry_run("train") if " -m trainer train " in c] == [
        ".venv/bin/python -m trainer train --bundled mnist --weights-dir models/weights"]
    for dataset, names in BUNDLED.items():
        for i, name in enumerate(names):  # a model built on another (its teacher) comes after it
            assert PRESETS[name].dataset == dataset
            assert not PRESETS[name].teacher or PRESETS[name].teacher in names[:i], name


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
    assert serve[-1].endswith("-m service --host 127.0.0.1 --port 8000 --workers auto")  # both cores


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
