"""The container files, parsed: what a build needs before it starts. What the built image answers (its user,
PID 1, health check, packages, drain on SIGTERM) is checked by scripts/image-check.sh on a real build."""
import re

import yaml

from tests.conftest import ROOT


def dockerfile_instructions():
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def environment(service: dict) -> dict[str, str | None]:
    """A compose service's environment list: NAME=value, or NAME alone (passed through from the host)."""
    return dict((e.split("=", 1) + [None])[:2] if "=" in e else (e, None) for e in service["environment"])


def test_compose_passes_the_api_key_through_and_never_sets_it():
    """NAME alone passes the host's variable when it is set and nothing otherwise, in docker compose and
    podman-compose alike (podman-compose 1.0 sent the literal text of `${DIGITGEN_API_KEY:-}`: every request 401)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("digitgen", "digitgen-gpu", "digitgen-replica"):
        assert environment(compose["services"][name])["DIGITGEN_API_KEY"] is None, name


def test_compose_cpu_default_and_gpu_reservation():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    cpu = services["digitgen"]
    assert "profiles" not in cpu  # starts by default
    assert cpu["ports"] == ["8000:8000"]
    assert environment(cpu)["DIGITGEN_DEVICE"] == "cpu"
    assert "/readyz" in " ".join(cpu["healthcheck"]["test"])
    gpu = services["digitgen-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert environment(gpu)["DIGITGEN_DEVICE"] == "cuda"
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


def test_image_check_says_in_one_line_when_there_is_no_container_engine(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "scripts.image_check"], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": str(tmp_path)}, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == ("image-check: needs podman or docker "
                                     "(Debian: apt-get install -y podman buildah runc)")


def test_the_committed_image_check_is_of_the_deploy_files_as_they_are():
    """scripts/image-check.sh takes longer than CI allows, so its result is committed with every change to the
    Dockerfile, compose file or deploy/: the newest one must be of these files, and must have passed."""
    import json

    from scripts.image_check import deploy_inputs_sha256
    newest = max((ROOT / "benchmarks" / "results").glob("image-*.json"))
    result = json.loads(newest.read_text())
    assert result["deploy_inputs_sha256"] == deploy_inputs_sha256(), f"{newest.name} is of other deploy files: " \
        "run make image-check and commit its result"
    assert result["checks"]["uid"] == 10001 and result["checks"]["healthcheck"] == "healthy"
    assert result["sigterm"]["exit_status"] == 0


def dockerfile_args() -> dict[str, str]:
    return dict(l[len("ARG "):].split("=", 1) for l in dockerfile_instructions() if l.startswith("ARG ") and "=" in l)


def test_dockerfile_defaults_to_the_real_base_and_the_cpu_torch_of_the_pin():
    args = dockerfile_args()
    assert args["BASE"] == "python:3.11-slim-trixie"  # a stand-in only where a build asks for one
    assert args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"  # the default image is CPU-only
    import tomllib
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_pin = next(d for d in deps if d.startswith("torch=="))
    assert f"torch=={args['TORCH_VERSION']}" == torch_pin  # `pip install .` then finds torch satisfied


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
