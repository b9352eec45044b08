"""Reading compose files as `docker compose` does: YAML, interpolation, override merging."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from tests.deploy.repo import ROOT

COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_DEV = ROOT / "docker-compose.dev.yml"
SCHEMA = Path(__file__).with_name("schemas") / "compose-spec.json"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, ${VAR:+alt}, $VAR, $$.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>\w+))"
)
# Keys whose values replace the base file's instead of merging with them.
_REPLACED = {"command", "entrypoint", "test"}


def load(path: Path) -> dict[str, Any]:
    """A compose file as YAML (anchors and `<<` merge keys resolved), not interpolated."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    return data


def interpolate(value: Any, env: dict[str, str], seen: set[str]) -> Any:
    """Substitute variables as compose does, from `env` only; record the names in `seen`."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, seen) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, seen) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("bare")
        seen.add(name)
        op, arg = match.group("op"), match.group("arg") or ""
        present = env.get(name)
        unset_or_empty = not present if op and op.startswith(":") else present is None
        if op in (":-", "-"):
            return arg if unset_or_empty else str(present)
        if op in (":?", "?"):
            assert not unset_or_empty, f"${{{name}}} is required: {arg}"
            return str(present)
        if op in (":+", "+"):
            return "" if unset_or_empty else arg
        return present or ""

    return _INTERPOLATION.sub(one, value)


def merge(base: Any, override: Any, key: str = "") -> Any:
    """`docker compose -f base -f override`: mappings merge, lists add, commands replace."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in _REPLACED:
        return base + [item for item in override if item not in base]
    return override


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_errors(data: dict[str, Any]) -> list[str]:
    """What the Compose Specification's JSON Schema says is wrong with `data`."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def seconds(duration: str | int) -> float:
    """A compose duration (`90s`, `30m`, `1h30m`, `1m30s`) in seconds."""
    if isinstance(duration, int):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts, f"{duration!r} is no duration"
    assert "".join(n + u for n, u in parts) == duration, f"{duration!r} is no duration"
    return sum(float(n) * units[u] for n, u in parts)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(str(item).partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}
