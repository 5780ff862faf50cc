"""Kubernetes manifests: every kustomization renders (`kubectl kustomize`, or a small Python
render of resources/components/namespace where kubectl is absent), every object validates
against the Kubernetes JSON schemas (kubernetes-validate, strict: unknown fields fail), the
KEDA ScaledObject against the schema of KEDA's CRD, and the autoscalers point at what
exists: the HPA at the web Deployment, KEDA at the worker Deployment and at the Redis list
Celery really uses for the sync queue."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from app.config import Settings
from tests.servers import ROOT

K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = ["base", "overlays/example", "overlays/autoscaled"]
K8S_VERSION = "1.30.0"

# The ScaledObject spec, from KEDA's CRD (kedacore/keda config/crd/bases/
# keda.sh_scaledobjects.yaml, openAPIV3Schema `spec`): the fields used here, with types and
# required keys as the CRD has them; unknown fields are refused (a typo would otherwise be
# ignored by the API server's pruning and the autoscaler silently misconfigured).
_INT = {"type": "integer"}
SCALEDOBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        k: {"type": "string"}
                        for k in ("apiVersion", "kind", "name", "envSourceContainerName")
                    },
                },
                "pollingInterval": _INT,
                "cooldownPeriod": _INT,
                "idleReplicaCount": _INT,
                "minReplicaCount": _INT,
                "maxReplicaCount": _INT,
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {"type": "object"},
                            },
                        },
                    },
                },
                "fallback": {"type": "object", "required": ["failureThreshold", "replicas"]},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {"type": "object", "required": ["name"]},
                        },
                    },
                },
            },
        },
    },
}


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def python_render(directory: Path) -> list[dict[str, Any]]:
    """The parts of kustomize these files use for structure: resources (files and
    directories), components, namespace. Images, replicas and patches are left out: they
    change values, not which objects exist."""
    k = _load(directory / "kustomization.yaml")[0]
    docs: list[dict[str, Any]] = []
    for entry in k.get("resources", []) + k.get("components", []):
        target = directory / entry
        if target.is_dir():
            docs += python_render(target)
        else:
            docs += _load(target)
    if k.get("namespace"):
        for d in docs:
            d.setdefault("metadata", {})["namespace"] = k["namespace"]
    return docs


def render(name: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run(
            [kubectl, "kustomize", str(K8S / name)], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        return [d for d in yaml.safe_load_all(out.stdout) if d]
    return python_render(K8S / name)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_manifests_render_and_validate(name):
    docs = render(name)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= kinds
    for d in docs:
        if d["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(d, SCALEDOBJECT_SCHEMA)
        else:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_autoscalers_target_what_exists():
    docs = render("overlays/autoscaled")
    deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "personyze-sync-web" in deployments
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    web = deployments["personyze-sync-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["resources"]["requests"]["cpu"]  # CPU utilization is measured against it
    (so,) = by_kind(docs, "ScaledObject")
    assert so["spec"]["scaleTargetRef"]["name"] == "personyze-sync-worker" in deployments
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert namespaces == {"personyze-sync"}
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == Settings().sync_queue
    secret = (K8S / "base" / "secret.example.yaml").read_text()
    for key in ("addressFromEnv", "passwordFromEnv"):  # read from the worker's environment
        assert f"{trigger['metadata'][key]}:" in secret
    assert not by_kind(render("overlays/example"), "ScaledObject")  # opt-in: needs KEDA


def test_python_render_agrees_with_kubectl():
    if not shutil.which("kubectl"):
        pytest.skip("kubectl not installed: only the Python render is used")
    for name in KUSTOMIZATIONS:
        names = sorted((d["kind"], d["metadata"]["name"]) for d in render(name))
        assert names == sorted(
            (d["kind"], d["metadata"]["name"]) for d in python_render(K8S / name)
        )


def test_the_sync_queue_is_a_redis_list_of_that_name(rt):
    """What KEDA's redis scaler measures: kombu's Redis transport keeps a queue's messages
    in a list named after the queue (default priority), LLEN is its length."""
    for pid in ("1", "2", "3"):
        rt.waker.publish("default", pid)
    assert rt.redis.llen(rt.settings.sync_queue) == 3
