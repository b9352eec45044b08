"""What the deployment files must agree with: the repository's images, entry points, settings.

Shared by the Dockerfile, compose and Kubernetes checks: the catalog of images (which
Dockerfile builds which image of which workspace package), whether a command line starts
something that exists, and which `VOXFLOW_*` names are settings.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ENV_EXAMPLE = ROOT / ".env.example"
# Container images run as this user (the Dockerfiles create it; the manifests require it).
UID = 10001


@dataclass(frozen=True)
class Image:
    """One container image: its name, Dockerfile, workspace package and extras."""

    name: str
    dockerfile: str
    package: str
    package_dir: str  # the package's sources, copied into the build
    extras: tuple[str, ...] = ()
    # api (uvicorn), worker (celery), daemon (a loop serving /metrics) or cli (one-shots)
    kind: str = "api"

    @property
    def path(self) -> Path:
        """The Dockerfile."""
        return ROOT / self.dockerfile


IMAGES: dict[str, Image] = {
    image.name: image
    for image in (
        Image("voxflow/ingest-api", "services/ingest_api/Dockerfile", "voxflow-ingest-api",
              "services/ingest_api/ingest_api"),
        Image("voxflow/status-api", "services/status_api/Dockerfile", "voxflow-status-api",
              "services/status_api/status_api"),
        Image("voxflow/transcription-worker", "services/transcription_worker/Dockerfile",
              "voxflow-transcription-worker",
              "services/transcription_worker/transcription_worker", kind="worker"),
        Image("voxflow/transcription-worker-cuda",
              "services/transcription_worker/Dockerfile.cuda", "voxflow-transcription-worker",
              "services/transcription_worker/transcription_worker", kind="worker"),
        Image("voxflow/llm-worker", "services/llm_worker/Dockerfile", "voxflow-llm-worker",
              "services/llm_worker/llm_worker", kind="worker"),
        Image("voxflow/webhook-sender", "services/webhook_sender/Dockerfile",
              "voxflow-webhook-sender", "services/webhook_sender/webhook_sender", kind="worker"),
        Image("voxflow/sweeper", "services/sweeper/Dockerfile", "voxflow-sweeper",
              "services/sweeper/sweeper", kind="daemon"),
        Image("voxflow/cli", "cli/Dockerfile", "voxflow-cli", "cli/voxflow_cli", kind="cli"),
    )
}  # fmt: skip


def image_of(reference: str) -> tuple[Image, str]:
    """The catalog image and the tag of `[registry/]voxflow/<name>:<tag>`."""
    name, _, tag = reference.rpartition(":")
    assert name, f"{reference}: name an image with a tag"
    assert tag, f"{reference}: name an image with a tag"
    assert "/" not in tag, f"{reference}: name an image with a tag"
    short = "/".join(name.split("/")[-2:])  # drop a registry prefix
    assert short in IMAGES, f"{reference}: not one of the images built here ({sorted(IMAGES)})"
    return IMAGES[short], tag


def require_tool(name: str, hint: str) -> str:
    """A tool's path; a failure under CI, where it must be installed, else a skip."""
    found = shutil.which(name)
    if found is None:
        message = f"`{name}` is not installed ({hint})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def pyproject(relative: str) -> dict[str, object]:
    """A pyproject.toml of the workspace, parsed."""
    return tomllib.loads((ROOT / relative).read_text(encoding="utf-8"))


def workspace_pyprojects() -> list[str]:
    """The root pyproject and every member's, as paths relative to the root."""
    workspace = pyproject("pyproject.toml")["tool"]
    assert isinstance(workspace, dict)
    patterns = workspace["uv"]["workspace"]["members"]
    members = {p.parent.relative_to(ROOT).as_posix()
               for pattern in patterns for p in ROOT.glob(f"{pattern}/pyproject.toml")}  # fmt: skip
    return ["pyproject.toml", *sorted(f"{member}/pyproject.toml" for member in members)]


def workspace_sources(package: str) -> set[str]:
    """The source directories of a workspace package and of the members it depends on."""
    members: dict[str, tuple[str, list[str]]] = {}
    for relative in workspace_pyprojects()[1:]:
        data = pyproject(relative)
        project, tool = data["project"], data["tool"]
        assert isinstance(project, dict)
        assert isinstance(tool, dict)
        (source,) = tool["hatch"]["build"]["targets"]["wheel"]["packages"]
        member = relative.removesuffix("/pyproject.toml")
        requires = [re.split(r"[\[<>=!~; ]", str(r), maxsplit=1)[0]
                    for r in project.get("dependencies", [])]  # fmt: skip
        members[str(project["name"])] = (f"{member}/{source}", requires)
    found: set[str] = set()
    pending = [package]
    while pending:
        name = pending.pop()
        if name in members and members[name][0] not in found:
            found.add(members[name][0])
            pending += members[name][1]
    assert found, f"{package} is no workspace package"
    return found


def project_versions() -> dict[str, str]:
    """`[project].version` of every workspace member, by project name."""
    versions: dict[str, str] = {}
    for relative in workspace_pyprojects()[1:]:
        project = pyproject(relative)["project"]
        assert isinstance(project, dict)
        versions[str(project["name"])] = str(project["version"])
    return versions


@cache
def console_scripts() -> dict[str, str]:
    """Console scripts the workspace installs: name -> `module:function`."""
    scripts: dict[str, str] = {}
    for relative in workspace_pyprojects():
        project = pyproject(relative).get("project", {})
        assert isinstance(project, dict)
        scripts |= {str(k): str(v) for k, v in project.get("scripts", {}).items()}
    return scripts


@cache
def voxflow_settings() -> frozenset[str]:
    """Every `VOXFLOW_*` setting .env.example documents (commented out or not)."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    return frozenset(re.findall(r"^(?:# )?(VOXFLOW_[A-Z0-9_]+)=", text, re.MULTILINE))


def check_setting_names(names: object, where: str) -> None:
    """Every `VOXFLOW_*` name among `names` must be a documented setting."""
    assert isinstance(names, list | set | frozenset | tuple | dict), names
    unknown = sorted(n for n in names if str(n).startswith("VOXFLOW_"))
    unknown = [n for n in unknown if n not in voxflow_settings()]
    assert not unknown, f"{where}: {unknown} are no settings in .env.example"


def module_exists(module: str) -> bool:
    """Whether a dotted module can be imported from the workspace (found, not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def defines(module: str, attribute: str) -> bool:
    """Whether a module's source binds `attribute` at top level (read, not imported)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None
    assert spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == attribute:
                return True
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == attribute for t in node.targets):
                return True
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == attribute
        ):
            return True
    return False


def voxflow_commands() -> set[str]:
    """Sub-commands of the `voxflow` command (its typer app)."""
    import typer.main

    from voxflow_cli.main import app

    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    assert isinstance(commands, dict)
    return set(commands)


def check_entrypoint(argv: list[str], where: str) -> None:
    """The command line starts something this repository ships.

    `voxflow <command>` (a console script and one of its sub-commands), `uvicorn
    module:app`, `celery -A module worker|inspect`, `python -m module` or `python -c`.
    """
    assert argv, f"{where}: empty command"
    program, args = argv[0], argv[1:]
    if program in console_scripts():
        target_module = console_scripts()[program].partition(":")[0]
        assert module_exists(target_module), f"{where}: {program} points at {target_module}"
        if program == "voxflow":
            assert args, f"{where}: `voxflow` needs a command"
            assert args[0] in voxflow_commands(), f"{where}: no `voxflow {args[0]}` command"
    elif program == "uvicorn":
        target = next(a for a in args if not a.startswith("-"))
        module, _, attribute = target.partition(":")
        assert module_exists(module), f"{where}: uvicorn app module {module} does not exist"
        assert defines(module, attribute), f"{where}: {module} defines no `{attribute}`"
    elif program == "celery":
        module = next(args[i + 1] for i, a in enumerate(args) if a in ("-A", "--app"))
        assert module_exists(module), f"{where}: celery app module {module} does not exist"
        assert defines(module, "app"), f"{where}: {module} defines no Celery `app`"
        assert {"worker", "inspect"} & set(args), f"{where}: neither `worker` nor `inspect`"
    elif program in ("python", "python3"):
        assert args[:1] in (["-m"], ["-c"]), f"{where}: run `python -m module` or `-c`"
        if args[0] == "-m":
            assert module_exists(args[1]), f"{where}: python -m {args[1]}: no such module"
    else:
        raise AssertionError(f"{where}: {program} is no entry point of this repository")
