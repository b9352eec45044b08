"""The layout holds: the library imports downwards only, and no process imports another.

`shared/voxflow` is the library every service installs. Its top-level modules and packages
are stacked in LAYERS; a module may import its own package and anything in a lower layer,
never sideways or upwards, and the modules form no cycle (type-only imports included, since a
cycle there means a name sits in the wrong module). The services, the CLI and the library
are separate distributions: the library imports none of them, and a service imports no other
service (they talk through the database and the queue). Every import statement counts,
including those inside functions and under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "shared" / "voxflow"

# Lowest first. Each name is a top-level module or package of `voxflow`.
LAYERS: tuple[frozenset[str], ...] = (
    # foundations: configuration and process plumbing that knows nothing of jobs
    frozenset({"settings", "languages", "logs", "fairpool", "embedded"}),
    frozenset({"observability"}),  # tracing, metrics, their exposition
    # infrastructure: the database, object storage, the broker, transcript formats
    frozenset({"db", "storage", "queue", "transcript_formats"}),
    frozenset({"webhooks"}),  # deliveries' model and SQL, signing, destinations, publishing
    frozenset({"jobs"}),  # the job lifecycle: models, states, repository, service
    # what processes build on the lifecycle: API keys, worker stages, schema migrations
    frozenset({"apikeys", "worker", "migrations", "migrate"}),
    frozenset({"web"}),  # the HTTP services' shared plumbing
)
# The other distributions of the workspace: top-level package -> its folder.
DISTRIBUTIONS = {
    "ingest_api": ROOT / "services" / "ingest_api" / "ingest_api",
    "status_api": ROOT / "services" / "status_api" / "status_api",
    "transcription_worker": ROOT / "services" / "transcription_worker" / "transcription_worker",
    "llm_worker": ROOT / "services" / "llm_worker" / "llm_worker",
    "sweeper": ROOT / "services" / "sweeper" / "sweeper",
    "webhook_sender": ROOT / "services" / "webhook_sender" / "webhook_sender",
    "voxflow_cli": ROOT / "cli" / "voxflow_cli",
}
# The CLI's `voxflow sweeper` runs the sweeper's loop (a declared dependency of voxflow-cli).
ALLOWED_ACROSS = {("voxflow_cli", "sweeper")}


@dataclass(frozen=True)
class Import:
    """One imported module name, where it is imported."""

    source: str  # the importing module, dotted
    target: str  # the imported module (or `module.name`), dotted
    line: int


def module_name(path: Path, package_dir: Path) -> str:
    """The dotted name of a source file under a top-level package's folder."""
    parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources(package_dir: Path) -> Iterator[tuple[str, Path]]:
    """Every module of a package, by dotted name (Alembic's revision scripts excluded)."""
    for path in sorted(package_dir.rglob("*.py")):
        if "versions" not in path.relative_to(package_dir).parts:
            yield module_name(path, package_dir), path


def imports_of(name: str, path: Path) -> Iterator[Import]:
    """Every import statement of a module, resolved to absolute dotted names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield Import(name, f"{base}.{alias.name}", node.lineno)


def library_modules() -> dict[str, Path]:
    """The library's modules by dotted name."""
    return dict(sources(LIBRARY))


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The library module an imported name lives in (`voxflow.jobs.models.Job` -> the module)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def top(module: str) -> str:
    """The top-level module or package of `voxflow` a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_of(name: str) -> int:
    """The index of the layer a top-level name belongs to."""
    for index, members in enumerate(LAYERS):
        if name in members:
            return index
    raise KeyError(name)


def library_edges() -> list[tuple[Import, str]]:
    """Imports between library modules, each with the module it resolves to."""
    modules = library_modules()
    edges = []
    for name, path in modules.items():
        for found in imports_of(name, path):
            if found.target.split(".")[0] != "voxflow":
                continue
            target = resolve(found.target, modules)
            if target is not None and target != name and target != "voxflow":
                edges.append((found, target))
    return edges


def test_every_part_of_the_library_has_a_layer() -> None:
    parts = {top(name) for name in library_modules()} - {""}
    placed = set().union(*LAYERS)
    assert parts - placed == set(), "add the new parts to LAYERS, above what they import"
    assert placed - parts == set(), "LAYERS names parts the library no longer has"


def test_the_library_imports_downwards_only() -> None:
    wrong = []
    for found, target in library_edges():
        source, destination = top(found.source), top(target)
        if source != destination and layer_of(destination) >= layer_of(source):
            where = f"{found.source}:{found.line}"
            wrong.append(f"{where} imports {target} ({source} -> {destination})")
    assert wrong == [], "imports sideways or upwards in the library:\n" + "\n".join(wrong)


def test_the_library_has_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {name: set() for name in library_modules()}
    for found, target in library_edges():
        graph[found.source].add(target)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle in the library: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize("owner", ["voxflow", *DISTRIBUTIONS])
def test_no_distribution_imports_a_service_or_client_it_does_not_own(owner: str) -> None:
    folder = LIBRARY if owner == "voxflow" else DISTRIBUTIONS[owner]
    wrong = []
    for name, path in sources(folder):
        for found in imports_of(name, path):
            first = found.target.split(".")[0]
            if first in DISTRIBUTIONS and first != owner and (owner, first) not in ALLOWED_ACROSS:
                wrong.append(f"{name}:{found.line} imports {found.target}")
    assert wrong == [], f"{owner} reaches into another process's code:\n" + "\n".join(wrong)


def test_the_checks_see_imports_inside_functions_and_type_checking(tmp_path: Path) -> None:
    package = tmp_path / "voxflow"
    (package / "jobs").mkdir(parents=True)
    (package / "jobs" / "__init__.py").write_text("")
    source = package / "jobs" / "models.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from voxflow.web.auth import Tenant\n"
        "def f():\n    from ..db import after_commit\n    import voxflow.queue.names\n"
    )
    found = {i.target for i in imports_of(module_name(source, package), source)}
    assert {"voxflow.web.auth.Tenant", "voxflow.db.after_commit", "voxflow.queue.names"} <= found
