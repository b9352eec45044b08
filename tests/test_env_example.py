""".env.example documents every setting: it matches the settings classes, which all describe
their fields. Regenerate with `uv run python scripts/gen_env_example.py`."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    """scripts/gen_env_example.py (imported when a test first needs it)."""
    return importlib.import_module("scripts.gen_env_example")


def _classes(generator: ModuleType) -> list[type[BaseSettings]]:
    classes: list[type[BaseSettings]] = generator.settings_classes()
    return classes


def test_committed_file_is_current(generator: ModuleType) -> None:
    committed = (ROOT / ".env.example").read_text()
    rendered: str = generator.render()
    assert committed == rendered, (
        ".env.example is out of date: run `uv run python scripts/gen_env_example.py`"
    )


def test_every_field_has_a_description(generator: ModuleType) -> None:
    missing = [
        f"{cls.__qualname__}.{name}"
        for cls in _classes(generator)
        for name, field in cls.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert missing == [], f"settings without a description: {missing}"


def test_every_field_is_in_the_file(generator: ModuleType) -> None:
    text = (ROOT / ".env.example").read_text()
    for cls in _classes(generator):
        for name in cls.model_fields:
            assert re.search(rf"^(# )?VOXFLOW_{name.upper()}=", text, re.MULTILINE), name


def _source_files() -> list[Path]:
    return [p for folder in ("shared", "services") for p in (ROOT / folder).rglob("*.py")]


def test_no_settings_class_is_left_out(generator: ModuleType) -> None:
    """Every settings class in the source (found by reading it) is one the generator covers."""
    definitions = [
        (name, {base.strip().split(".")[-1] for base in bases.split(",") if base.strip()})
        for path in _source_files()
        for name, bases in re.findall(r"^class (\w+)\(([^)]*)\):", path.read_text(), re.M)
    ]
    settings = {"BaseSettings"}
    while True:  # a class is a settings class if one of its bases is
        grown = settings | {name for name, bases in definitions if bases & settings}
        if grown == settings:
            break
        settings = grown
    listed = {cls.__name__ for cls in _classes(generator)}
    assert settings - {"BaseSettings"} - listed == set(), "add them to settings_classes()"


def test_every_variable_named_in_the_source_is_documented() -> None:
    """Variables read with os.environ (not through a settings class) are listed too."""
    text = (ROOT / ".env.example").read_text()
    named = {
        match
        for path in _source_files()
        for match in re.findall(r"\bVOXFLOW_[A-Z][A-Z0-9_]*", path.read_text())
    }
    undocumented = sorted(n for n in named if not re.search(rf"^(# )?{n}=", text, re.MULTILINE))
    assert undocumented == [], (
        f"add to ENVIRONMENT_ONLY in scripts/gen_env_example.py: {undocumented}"
    )
