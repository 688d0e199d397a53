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
