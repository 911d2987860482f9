"""The GKE manifests, rendered from each overlay and checked without a cluster.

Kubernetes' own schemas (kubernetes-validate, strict) for the built-in kinds; for GKE's own
kinds (BackendConfig, ManagedCertificate, PodMonitoring), schemas of just the fields used
here, written from GKE's documentation. Then what no schema knows: that names refer to
objects that exist, settings to real settings, probes and metrics to what the API serves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from api.app import create_app
from api.metrics import ServiceMetrics
from api.settings import ApiSettings
from labeling_dashboard.settings import DashboardSettings

ROOT = Path(__file__).resolve().parents[2]
GKE = ROOT / "templates" / "gke"
OVERLAYS = ("cpu", "gpu")
# GKE's regular channel and the newest release the schemas cover.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
# Created by hand (docs/deploy-gcp.md), never rendered: name -> keys.
SECRETS = {"imgclf-api-keys": {"keys"}, "imgclf-db": {"jobs-url", "labels-url", "lineage-url"}}

_STRING = {"type": "string"}
GKE_SCHEMAS = {
    ("cloud.google.com/v1", "BackendConfig"): {
        "type": "object",
        "properties": {
            "iap": {"type": "object", "properties": {"enabled": {"type": "boolean"}}, "additionalProperties": False},
            "healthCheck": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["HTTP", "HTTPS", "HTTP2"]},
                    "requestPath": _STRING,
                    "port": {"type": "integer"},
                },
                "additionalProperties": False,
            },
            "timeoutSec": {"type": "integer"},
            "sessionAffinity": {
                "type": "object",
                "properties": {"affinityType": {"enum": ["CLIENT_IP", "GENERATED_COOKIE"]}},
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    },
    ("networking.gke.io/v1", "ManagedCertificate"): {
        "type": "object",
        "properties": {"domains": {"type": "array", "items": _STRING, "minItems": 1, "maxItems": 100}},
        "required": ["domains"],
        "additionalProperties": False,
    },
    ("monitoring.googleapis.com/v1", "PodMonitoring"): {
        "type": "object",
        "properties": {
            "selector": {
                "type": "object",
                "properties": {"matchLabels": {"type": "object"}},
                "required": ["matchLabels"],
            },
            "endpoints": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "port": _STRING,
                        "path": _STRING,
                        "interval": {"type": "string", "pattern": r"^\d+[smh]$"},
                    },
                    "required": ["port"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["selector", "endpoints"],
        "additionalProperties": False,
    },
}


@cache
def rendered(overlay: str) -> tuple[dict, ...]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with its built-in kustomize) renders the overlays; it comes with the gcloud SDK"
    out = subprocess.run(
        [kubectl, "kustomize", str(GKE / "overlays" / overlay)], capture_output=True, text=True, check=True
    )
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def _by_kind(overlay: str, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in rendered(overlay) if o["kind"] == kind}


def _pod_specs(overlay: str) -> dict[str, dict]:
    specs = {name: d["spec"]["template"]["spec"] for name, d in _by_kind(overlay, "Deployment").items()}
    for name, cron in _by_kind(overlay, "CronJob").items():
        specs[name] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return specs


def _containers(spec: dict) -> list[dict]:
    return spec["containers"] + spec.get("initContainers", [])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_against_its_schema(overlay, version):
    for obj in rendered(overlay):
        schema = GKE_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        if schema is not None:
            jsonschema.validate(obj["spec"], schema)
        else:
            kubernetes_validate.validate(obj, version, strict=True)
    kinds = {o["kind"] for o in rendered(overlay)}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "CronJob", "Ingress"} <= kinds
    assert {"BackendConfig", "ManagedCertificate", "PodMonitoring", "NetworkPolicy", "ServiceAccount"} <= kinds


def test_the_gke_schemas_refuse_a_misspelt_field():
    backend = _by_kind("cpu", "BackendConfig")["imgclf-dashboard"]["spec"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**backend, "iap": {"enable": True}}, GKE_SCHEMAS[("cloud.google.com/v1", "BackendConfig")])
    with pytest.raises(kubernetes_validate.ValidationError):
        deployment = _by_kind("cpu", "Deployment")["imgclf-api"]
        kubernetes_validate.validate(
            {**deployment, "spec": {**deployment["spec"], "replica": 2}}, "1.37.0", strict=True
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_names_refer_to_objects_that_exist(overlay):
    objects = rendered(overlay)
    config_maps = _by_kind(overlay, "ConfigMap")
    accounts = _by_kind(overlay, "ServiceAccount")
    for name, spec in _pod_specs(overlay).items():
        assert spec["serviceAccountName"] in accounts, name
        for container in _containers(spec):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, name
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in SECRETS[ref["name"]], (name, ref)
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, name
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in _by_kind(overlay, "Deployment").items()}
    for service in _by_kind(overlay, "Service").values():
        assert any(service["spec"]["selector"].items() <= pod.items() for pod in labels.values()), service
    for pdb in _by_kind(overlay, "PodDisruptionBudget").values():
        assert any(pdb["spec"]["selector"]["matchLabels"].items() <= pod.items() for pod in labels.values())
    for hpa in _by_kind(overlay, "HorizontalPodAutoscaler").values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in labels
    for ingress in _by_kind(overlay, "Ingress").values():
        service = _by_kind(overlay, "Service")[ingress["spec"]["defaultBackend"]["service"]["name"]]
        backend = re.search(
            r'"default": "([^"]+)"', service["metadata"]["annotations"]["cloud.google.com/backend-config"]
        )
        assert (
            backend[1] in _by_kind(overlay, "BackendConfig")
            and _by_kind(overlay, "BackendConfig")[backend[1]]["spec"]["iap"]["enabled"]
        )
        certificate = ingress["metadata"]["annotations"]["networking.gke.io/managed-certificates"]
        assert certificate in _by_kind(overlay, "ManagedCertificate")
    assert all(o["metadata"].get("namespace") == "imgclf" for o in objects if o["kind"] != "Namespace")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_given_to_a_pod_is_one_the_processes_read(overlay):
    known = {f"IMGCLF_{name.upper()}" for cls in (ApiSettings, DashboardSettings) for name in cls.model_fields}
    (settings,) = [c for name, c in _by_kind(overlay, "ConfigMap").items() if name.startswith("imgclf-settings")]
    assert set(settings["data"]) <= known, set(settings["data"]) - known
    for name, spec in _pod_specs(overlay).items():
        for container in spec["containers"]:
            used_in_command = " ".join(container.get("command", []))
            for var in container.get("env", []):
                assert var["name"] in known or f"$({var['name']})" in used_in_command, (name, var["name"])
    ApiSettings(**{k.removeprefix("IMGCLF_").lower(): v for k, v in settings["data"].items() if k in known and v})


def test_probes_and_the_autoscaling_metric_are_what_the_api_serves(tmp_path):
    api = _by_kind("cpu", "Deployment")["imgclf-api"]["spec"]["template"]["spec"]["containers"][0]
    settings = ApiSettings(jobs_db=f"sqlite:///{tmp_path}/jobs.db", jobs_dir=str(tmp_path / "jobs"))
    routes = set(create_app(settings).openapi()["paths"])
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["path"] in routes, probe
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    gauges = {metric.name for metric in ServiceMetrics().registry.collect()}
    (custom,) = [
        m for m in _by_kind("cpu", "HorizontalPodAutoscaler")["imgclf-api"]["spec"]["metrics"] if m["type"] == "Pods"
    ]
    prefix, metric, kind = custom["pods"]["metric"]["name"].split("|")
    assert (prefix, kind) == ("prometheus.googleapis.com", "gauge") and metric in gauges
    (monitoring,) = _by_kind("cpu", "PodMonitoring").values()
    assert monitoring["spec"]["endpoints"][0]["path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_as_non_root_and_every_image_is_ours_or_pinned(overlay):
    for name, spec in _pod_specs(overlay).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in _containers(spec):
            image = container["image"]
            if "PROJECT_ID" in image:
                build = "cpu" if name == "imgclf-dashboard" else overlay  # the dashboard runs no model
                assert re.fullmatch(rf"REGION_NAME-docker\.pkg\.dev/PROJECT_ID/imgclf/[a-z]+-{build}:latest", image), (
                    image
                )
            else:
                assert re.fullmatch(r"[a-z0-9./-]+:\d+\.\d+\.\d+", image), f"{name}: unpinned image {image}"


def test_the_gpu_overlay_puts_the_api_and_retraining_on_l4_nodes_and_dataflow_on_l4_workers():
    for overlay in OVERLAYS:
        gpu = overlay == "gpu"
        specs = _pod_specs(overlay)
        for name in ("imgclf-api", "imgclf-retrain"):
            limits = specs[name]["containers"][0]["resources"]["limits"]
            assert (limits.get("nvidia.com/gpu") == "1") is gpu, (overlay, name)
            assert (specs[name].get("nodeSelector") == {"cloud.google.com/gke-accelerator": "nvidia-l4"}) is gpu
        assert "nvidia.com/gpu" not in specs["imgclf-dashboard"]["containers"][0]["resources"].get("limits", {})
        (settings,) = [c["data"] for n, c in _by_kind(overlay, "ConfigMap").items() if n.startswith("imgclf-settings")]
        assert (settings.get("IMGCLF_DATAFLOW_GPU") == "true") is gpu
        assert settings["IMGCLF_DATAFLOW_TEMPLATE"].endswith(f"imgclf-batch-{overlay}.json")
        assert settings["IMGCLF_DATAFLOW_IMAGE"].endswith(f"/pipeline-{overlay}:latest")


DOC = ROOT / "docs" / "deploy-gcp.md"
PLACEHOLDERS = ("PROJECT_ID", "REGION_NAME", "BUCKET_NAME", "DASHBOARD_HOST", "MODEL_NAME")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_deploy_guides_render_command_fills_every_placeholder_and_breaks_nothing(overlay, tmp_path):
    text = DOC.read_text()
    command = re.search(r"(kubectl kustomize templates/gke/overlays/\$OVERLAY \\\n.*?> imgclf-gke\.yaml)", text, re.S)[
        1
    ]
    env = {
        "PATH": str(Path(shutil.which("kubectl")).parent) + ":/usr/bin:/bin",
        "PROJECT": "acme-vision",
        "REGION": "europe-west4",
        "BUCKET": "acme-vision-imgclf",
        "DASHBOARD_HOST": "labels.acme.example",
        "MODEL_NAME": "cells",
        "OVERLAY": overlay,
    }
    (tmp_path / "templates").symlink_to(ROOT / "templates")  # the guide runs from a checkout's root
    subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=tmp_path, env=env, check=True, timeout=60)
    filled = (tmp_path / "imgclf-gke.yaml").read_text()
    assert not [p for p in PLACEHOLDERS if p in filled]
    objects = [o for o in yaml.safe_load_all(filled) if o]
    assert len(objects) == len(rendered(overlay)), "the substitution changed the YAML's structure"
    (settings,) = [
        o["data"] for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("imgclf-settings")
    ]
    assert set(settings) == {
        k
        for c in _by_kind(overlay, "ConfigMap").values()
        if c["metadata"]["name"].startswith("imgclf-settings")
        for k in c["data"]
    }
    assert (
        settings["IMGCLF_DATAFLOW_REGION"] == "europe-west4"
        and settings["IMGCLF_MODEL_ROOT"] == "gs://acme-vision-imgclf/models"
    )
    images = {
        c["image"] for o in objects if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert f"europe-west4-docker.pkg.dev/acme-vision/imgclf/api-{overlay}:latest" in images


def test_the_deploy_guide_creates_every_secret_key_and_service_account_the_manifests_use():
    text = DOC.read_text()
    for name, keys in SECRETS.items():
        created = re.search(rf"create secret generic {name} ((?:.*\\\n)*.*)", text)  # with its continuation lines
        assert created, name
        assert set(re.findall(r"--from-literal=([a-z-]+)=", created[1])) == keys, name
    created = re.search(r"for sa in ([a-z ]+); do\n  gcloud iam service-accounts create", text)[1].split()
    bound = re.search(r"for who in ([a-z ]+); do\n  project_role \$who roles/cloudsql.client", text)[1].split()
    assert "svc.id.goog[imgclf/imgclf-$who]" in text  # Workload Identity, in the same loop
    for account in _by_kind("cpu", "ServiceAccount").values():
        name = account["metadata"]["name"].removeprefix("imgclf-")
        google = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert google == f"imgclf-{name}@PROJECT_ID.iam.gserviceaccount.com" and name in created and name in bound
