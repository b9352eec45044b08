"""Reading terraform/ with python-hcl2, and the overlay file its outputs become."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import hcl2

from tests.deploy.repo import ROOT

TERRAFORM = ROOT / "terraform"
TERRAFORM_ENV = ROOT / "k8s" / "overlays" / "prod-gpu" / "terraform.env"


def unquote(value: Any) -> Any:
    """A string literal without its quotes (python-hcl2 keeps them); other values as they are."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [unquote(v) for v in value]
    return value


@cache
def files() -> dict[str, dict[str, Any]]:
    """Every .tf file, parsed, by file name."""
    parsed: dict[str, dict[str, Any]] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            parsed[path.name] = hcl2.load(handle)
    return parsed


def blocks(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Top-level blocks of one kind (variable, output, locals...) across the files."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, parsed in files().items():
        for block in parsed.get(kind, []):
            found.append((name, block))
    return found


def variables() -> dict[str, dict[str, Any]]:
    """Variable blocks by name."""
    return {unquote(k): v for _, block in blocks("variable") for k, v in block.items()}


def outputs() -> dict[str, dict[str, Any]]:
    """Output blocks by name."""
    return {unquote(k): v for _, block in blocks("output") for k, v in block.items()}


def locals_() -> dict[str, Any]:
    """Every local value by name."""
    merged: dict[str, Any] = {}
    for _, block in blocks("locals"):
        merged |= {k: v for k, v in block.items() if not k.startswith("__")}
    return merged


def resources() -> set[str]:
    """`type.name` of every resource."""
    return {
        f"{unquote(kind)}.{unquote(name)}"
        for _, block in blocks("resource")
        for kind, named in block.items()
        for name in named
    }


def data_sources() -> set[str]:
    """`type.name` of every data source."""
    return {
        f"{unquote(kind)}.{unquote(name)}"
        for _, block in blocks("data")
        for kind, named in block.items()
        for name in named
    }


def variable_default(name: str) -> str:
    """A variable's default, as a string."""
    default = unquote(variables()[name]["default"])
    return str(default)


def kustomize_env_keys() -> set[str]:
    """The keys terraform writes into k8s/overlays/prod-gpu/terraform.env."""
    return set(locals_()["kustomize_env"])


def terraform_env(path: Path = TERRAFORM_ENV) -> dict[str, str]:
    """k8s/overlays/prod-gpu/terraform.env (KEY=value lines, # comments)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, eq, value = line.partition("=")
            assert eq, f"{path.name}: {line!r} is not KEY=value"
            values[key.strip()] = value.strip()
    return values


def gpu_node_label() -> dict[str, str]:
    """The label of the GPU node group's nodes."""
    label = unquote(locals_()["gpu_node_label"])
    assert isinstance(label, dict)
    return {str(k): str(v) for k, v in label.items()}


def gpu_node_taint() -> dict[str, str]:
    """The taint of the GPU node group's nodes (key, value, effect)."""
    taint = unquote(locals_()["gpu_node_taint"])
    assert isinstance(taint, dict)
    return {str(k): str(v) for k, v in taint.items()}
