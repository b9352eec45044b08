"""Rendering the kustomize overlays and validating what they produce, offline.

Built-in kinds are validated by kubernetes-validate (the Kubernetes JSON schemas of one
version, strict: unknown fields are errors). KEDA's kinds are validated against the
`openAPIV3Schema` of KEDA's own CRDs (tests/deploy/schemas), turned into JSON Schemas that
reject unknown fields too.
"""

from __future__ import annotations

import copy
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import yaml
from jsonschema import Draft7Validator  # type: ignore[import-untyped]

from tests.deploy.repo import ROOT, require_tool

OVERLAYS = ROOT / "k8s" / "overlays"
SCHEMAS = Path(__file__).with_name("schemas")
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "keda.sh_scaledobjects.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): SCHEMAS / "keda.sh_triggerauthentications.yaml",
}

Manifest = dict[str, Any]


def overlays() -> list[str]:
    """The overlays under k8s/overlays."""
    return sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file())


@cache
def _render(overlay: str, kubectl: str) -> str:
    result = subprocess.run(
        [kubectl, "kustomize", str(OVERLAYS / overlay)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"kubectl kustomize {overlay}: {result.stderr}"
    return result.stdout


def render(overlay: str) -> list[Manifest]:
    """`kubectl kustomize k8s/overlays/<overlay>`, as a list of objects (fresh copies)."""
    kubectl = require_tool("kubectl", "kubectl 1.27+ with its built-in kustomize renders k8s/")
    documents = yaml.safe_load_all(_render(overlay, kubectl))
    return [d for d in documents if d]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    """The objects of one kind, by name."""
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def _strict(node: Any) -> Any:
    """An openAPIV3Schema node as a JSON Schema that rejects fields it does not declare."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    result.pop("format", None)  # int32, date-time: Kubernetes checks ranges, not JSON Schema
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in node and "additionalProperties" not in node and not preserve:
        result["additionalProperties"] = False
    return result


@cache
def crd_validator(api_version: str, kind: str) -> Draft7Validator:
    """A validator for one custom kind, from its vendored CRD."""
    crd = yaml.safe_load(CRDS[(api_version, kind)].read_text(encoding="utf-8"))
    group, _, version = api_version.partition("/")
    assert crd["spec"]["group"] == group
    assert crd["spec"]["names"]["kind"] == kind
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _strict(copy.deepcopy(served["schema"]["openAPIV3Schema"]))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def validate(manifest: Manifest, kubernetes_version: str) -> list[str]:
    """Errors in one object: its CRD's schema for custom kinds, else Kubernetes's (strict)."""
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    if key in CRDS:
        errors = crd_validator(*key).iter_errors(manifest)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(manifest, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.path))}: {exc.message}"]
    return []


def pod_spec(workload: Manifest) -> Manifest:
    """The pod spec of a Deployment, StatefulSet or Job."""
    spec = workload["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def containers(workload: Manifest) -> list[Manifest]:
    """A workload's containers."""
    found = pod_spec(workload)["containers"]
    assert isinstance(found, list)
    return found


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector matches a set of labels."""
    wanted = selector.get("matchLabels", selector)
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())
