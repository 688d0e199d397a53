"""deploy/k8s: every overlay renders with `kubectl kustomize`, every object validates offline against
the Kubernetes schemas (kubernetes-validate ships them), and the rendered manifests have what an
operator relies on: probes, drain timing, security context, resources, config and secret wiring,
scaling, disruption budget, metrics discovery, and the GPU overlay's device, toleration and image."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("cpu", "gpu")
# the oldest Kubernetes the manifests are checked against, and the newest schemas bundled
SCHEMA_VERSIONS = ("1.28.0", None)
GRACEFUL_TIMEOUT_DEFAULT = 10.0  # python -m service --graceful-timeout default


def kustomize(path: Path) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: `kubectl kustomize` renders the manifests")
    result = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


_rendered: dict[str, list[dict]] = {}


def rendered(overlay: str) -> list[dict]:
    if overlay not in _rendered:
        path = K8S / "overlays" / overlay if overlay in OVERLAYS else K8S / overlay
        _rendered[overlay] = kustomize(path)
    return _rendered[overlay]


def only(docs: list[dict], kind: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, got {len(matches)}"
    return matches[0]


def container(docs: list[dict]) -> dict:
    containers = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def quantity(value) -> float:
    """A Kubernetes quantity as a number (cores, bytes)."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([\d.]+)([A-Za-z]*)", text)
    assert match, text
    return float(match.group(1)) * units.get(match.group(2), 1)


# ---- rendering and schema validation ----------------------------------------------------------

@pytest.mark.parametrize("overlay", [*OVERLAYS, "examples/hpa-inflight"])
def test_renders_and_validates_against_the_kubernetes_schemas(overlay):
    import kubernetes_validate
    docs = rendered(overlay)
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget",
                                         "HorizontalPodAutoscaler"}
    for doc in docs:
        for version in SCHEMA_VERSIONS:
            version = version or kubernetes_validate.latest_version()
            try:  # strict: unknown fields (typos) fail too
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']} is not valid for Kubernetes "
                            f"{version}: {exc.message} at {'/'.join(map(str, exc.path))}")


def test_the_schemas_catch_mistakes():
    """The validation above is not vacuous: a misspelt field and a wrong type are refused."""
    import copy

    import kubernetes_validate
    deployment = only(rendered("cpu"), "Deployment")
    for mutate in (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(readinesProbe={}),
                   lambda d: d["spec"].update(replicas="two")):
        broken = copy.deepcopy(deployment)
        mutate(broken)
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_the_secret_example_is_valid_but_not_applied():
    import kubernetes_validate
    example = yaml.safe_load((K8S / "examples" / "secret.example.yaml").read_text())
    kubernetes_validate.validate(example, kubernetes_validate.latest_version(), strict=True)
    assert example["metadata"]["name"] == "digitgen-api-key"
    assert set(example["stringData"]) == {"DIGITGEN_API_KEY"}
    assert example["stringData"]["DIGITGEN_API_KEY"].startswith("<")  # a placeholder, never a key
    for overlay in (*OVERLAYS, "examples/hpa-inflight"):
        assert not [d for d in rendered(overlay) if d["kind"] == "Secret"], overlay
    for kustomization in K8S.rglob("kustomization.yaml"):
        assert "secret.example" not in kustomization.read_text(), kustomization


# ---- the Deployment ---------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes(overlay):
    c = container(rendered(overlay))
    port = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port == {"http": 8000}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] in ("/healthz", "/readyz")
    # start-up takes ~2 s on CPU: a minute at least before the kubelet gives up
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    # a pod busy with bulk work is not restarted for one slow answer
    assert c["livenessProbe"]["failureThreshold"] * c["livenessProbe"]["periodSeconds"] >= 30


def command_option(command: list[str], flag: str, default: float) -> float:
    return float(command[command.index(flag) + 1]) if flag in command else default


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_period_covers_prestop_and_drain(overlay):
    deployment = only(rendered(overlay), "Deployment")
    c = container(rendered(overlay))
    command = c.get("command", []) + c.get("args", [])
    assert command[:3] == ["python", "-m", "service"] and "0.0.0.0" in command
    assert "--workers" not in command  # one worker a pod: replicas scale, metrics stay per pod
    drain = command_option(command, "--graceful-timeout", GRACEFUL_TIMEOUT_DEFAULT)
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    pre_stop_s = float(pre_stop[1])
    assert pre_stop_s >= 3  # long enough for endpoints to drop the pod before SIGTERM
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > pre_stop_s + drain, (grace, pre_stop_s, drain)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_context(overlay):
    deployment = only(rendered(overlay), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(rendered(overlay))
    dockerfile_user = re.findall(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)[-1]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(dockerfile_user) == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False  # no DIGITGEN_PORT=tcp://... from the Service's name
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not sc.get("privileged", False)
    # what must be written goes to an emptyDir at /tmp, and the environment points there
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HOME"] == "/tmp" and env["TMPDIR"] == "/tmp"
    # PROMETHEUS_MULTIPROC_DIR stays unset (one worker); with --workers N it is made under TMPDIR
    assert "PROMETHEUS_MULTIPROC_DIR" not in env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_resources(overlay):
    c = container(rendered(overlay))
    requests, limits = c["resources"]["requests"], c["resources"]["limits"]
    for name in ("cpu", "memory"):
        assert quantity(limits[name]) >= quantity(requests[name]) > 0
    # the measured resident set: 807 MiB warm, 957 MiB peak under bulk load (CPU)
    assert quantity(requests["memory"]) >= 1 * 2**30 and quantity(limits["memory"]) >= 1.5 * 2**30
    assert quantity(requests["cpu"]) >= 1
    # torch must not start one thread per node core under a CPU limit
    config = only(rendered(overlay), "ConfigMap")["data"]
    assert int(config["DIGITGEN_TORCH_THREADS"]) == quantity(limits["cpu"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_from_the_configmap_and_the_key_from_a_secret(overlay, monkeypatch):
    docs = rendered(overlay)
    c = container(docs)
    configmap = only(docs, "ConfigMap")
    assert c["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    # every key is a DIGITGEN_ setting the service knows, with a value it accepts
    from service.config import Settings
    fields = {f"DIGITGEN_{name.upper()}" for name in Settings.model_fields}
    assert set(configmap["data"]) <= fields, set(configmap["data"]) - fields
    assert "DIGITGEN_API_KEY" not in configmap["data"]
    for key in [k for k in os.environ if k.startswith("DIGITGEN_")]:
        monkeypatch.delenv(key)
    for key, value in configmap["data"].items():
        monkeypatch.setenv(key, value)
    Settings()  # raises on a value the service would refuse at start-up
    key = next(e for e in c["env"] if e["name"] == "DIGITGEN_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "digitgen-api-key", "key": "DIGITGEN_API_KEY",
                                                "optional": True}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_annotations(overlay):
    template = only(rendered(overlay), "Deployment")["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) == container(rendered(overlay))["ports"][0]["containerPort"]


# ---- Service, PodDisruptionBudget, HorizontalPodAutoscaler -----------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_pdb_and_hpa_select_the_pods(overlay):
    docs = rendered(overlay)
    deployment = only(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    service = only(docs, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"].items() <= pod_labels.items()

    pdb = only(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    hpa = only(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60


def test_cpu_overlay_runs_two_replicas_at_least():
    docs = rendered("cpu")
    assert only(docs, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    assert only(docs, "Deployment")["spec"]["replicas"] >= 2
    assert container(docs)["image"] == "digitgen:0.1.0-cpu"
    assert only(docs, "ConfigMap")["data"]["DIGITGEN_DEVICE"] == "cpu"
    assert "nvidia.com/gpu" not in container(docs)["resources"]["limits"]


def test_gpu_overlay():
    docs = rendered("gpu")
    c = container(docs)
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert only(docs, "ConfigMap")["data"]["DIGITGEN_DEVICE"] == "cuda"
    assert c["image"] == "digitgen:0.1.0-cuda" != container(rendered("cpu"))["image"]
    # CUDA initialisation: more time to start than the CPU flavour
    startup, cpu_startup = c["startupProbe"], container(rendered("cpu"))["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= \
        cpu_startup["periodSeconds"] * cpu_startup["failureThreshold"]


def test_the_overlays_can_share_a_namespace():
    """Different names and disjoint selectors: the cpu Service never sends traffic to gpu pods."""
    cpu, gpu = rendered("cpu"), rendered("gpu")
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap"):
        assert only(cpu, kind)["metadata"]["name"] != only(gpu, kind)["metadata"]["name"], kind
    cpu_pods = only(cpu, "Deployment")["spec"]["template"]["metadata"]["labels"]
    gpu_pods = only(gpu, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not only(cpu, "Service")["spec"]["selector"].items() <= gpu_pods.items()
    assert not only(gpu, "Service")["spec"]["selector"].items() <= cpu_pods.items()


# ---- the optional pieces ----------------------------------------------------------------------

def test_inflight_hpa_example():
    docs = rendered("examples/hpa-inflight")
    hpa = only(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "digitgen_requests_in_progress"
    assert metric["pods"]["target"]["type"] == "AverageValue"
    # the service exports that gauge under that name
    from service.metrics import Metrics
    names = {m.name for m in Metrics().registry.collect()}
    assert "digitgen_requests_in_progress" in names
    values = yaml.safe_load((K8S / "examples" / "hpa-inflight" / "prometheus-adapter-values.yaml").read_text())
    (rule,) = values["rules"]["custom"]
    assert "digitgen_requests_in_progress" in rule["seriesQuery"]
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"]
    assert "<<.Series>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]
    # not part of the default overlays
    for overlay in OVERLAYS:
        assert only(rendered(overlay), "HorizontalPodAutoscaler")["spec"]["metrics"][0]["type"] == "Resource"


def test_servicemonitor_component_is_optional_and_documented(tmp_path):
    for overlay in OVERLAYS:
        assert not [d for d in rendered(overlay) if d["kind"] == "ServiceMonitor"]
    # the documented way in: uncomment the two lines in an overlay
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    for overlay in OVERLAYS:
        kustomization = copy / "overlays" / overlay / "kustomization.yaml"
        text = kustomization.read_text()
        commented = "# components:\n#   - ../../components/servicemonitor\n"
        assert commented in text, overlay
        kustomization.write_text(text.replace(commented, "components:\n  - ../../components/servicemonitor\n"))
        docs = kustomize(kustomization.parent)
        monitor = only(docs, "ServiceMonitor")
        service = only(docs, "Service")
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        # it selects this overlay's Service (instance label included), on the named port
        assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
