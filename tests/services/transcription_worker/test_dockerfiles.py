"""Offline checks of the transcription worker's Dockerfiles (no Docker engine needed).

A small parser reads each Dockerfile (comments dropped, continuation lines joined, global
`ARG` defaults substituted into `FROM`), and the tests hold the files to the repository:
every path copied from the build context exists, every `--from` names an earlier stage, the
final stage runs as a non-root user the Celery worker of the real task module on the real
queue, and each image selects its device.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
from packaging.specifiers import SpecifierSet

from tests.conftest import ROOT
from transcription_worker.settings import TranscriptionWorkerSettings
from voxflow.queue.celery_app import QueueSettings
from voxflow.queue.names import TRANSCRIPTION_QUEUE

SERVICE = ROOT / "services" / "transcription_worker"
CPU = SERVICE / "Dockerfile"
CUDA = SERVICE / "Dockerfile.cuda"
DOCKERFILES = {"cpu": CPU, "cuda": CUDA}
DEVICES = {"cpu": "cpu", "cuda": "cuda"}


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    value: str
    line: int


@dataclass
class Stage:
    """A build stage: its base (image or earlier stage) and its instructions."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """This stage's instructions of one kind, in order."""
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions (no heredocs, default `\\` escape)."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#") or (not line and not parts):
            continue  # comments (also inside continuations) and blank lines
        if not line:
            continue  # a blank line inside a continuation is skipped, as Docker does
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        keyword, _, rest = " ".join(p for p in parts if p).partition(" ")
        instructions.append(Instruction(keyword.upper(), rest.strip(), start))
        parts = []
    assert not parts, f"the Dockerfile ends inside a continuation started on line {start}"
    return instructions


_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def substitute(value: str, variables: dict[str, str]) -> str:
    """Expand `$VAR`, `${VAR}` and `${VAR:-default}` from the given variables."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name in variables:
            return variables[name]
        assert match.group(2) is not None, f"${name} has no value: declare it with ARG"
        return match.group(2)

    return _VARIABLE.sub(one, value)


def arg_default(value: str) -> tuple[str, str | None]:
    """`NAME=default` (quotes allowed) or `NAME` of an ARG instruction."""
    name, eq, default = value.partition("=")
    if not eq:
        return name.strip(), None
    (unquoted,) = shlex.split(default) or [""]
    return name.strip(), unquoted


def stages(instructions: list[Instruction]) -> list[Stage]:
    """Group instructions into stages, with global ARG defaults substituted in FROM."""
    defaults: dict[str, str] = {}
    result: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = [w for w in instruction.value.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            assert len(words) in (1, 3), f"unexpected FROM on line {instruction.line}"
            result.append(Stage(substitute(words[0], defaults), name))
        elif not result:
            assert instruction.keyword == "ARG", f"only ARG may precede FROM: {instruction}"
            name, default = arg_default(instruction.value)
            if default is not None:
                defaults[name] = default
        else:
            result[-1].instructions.append(instruction)
    assert result, "no FROM"
    return result


def load(path: Path) -> list[Stage]:
    """The stages of one of the worker's Dockerfiles."""
    return stages(parse(path.read_text(encoding="utf-8")))


def global_args(path: Path) -> dict[str, str]:
    """The ARG defaults declared before the first FROM."""
    found: dict[str, str] = {}
    for instruction in parse(path.read_text(encoding="utf-8")):
        if instruction.keyword == "FROM":
            break
        name, default = arg_default(instruction.value)
        if default is not None:
            found[name] = default
    return found


def by_name(all_stages: list[Stage]) -> dict[str, Stage]:
    """Named stages by name."""
    return {s.name: s for s in all_stages if s.name}


def ancestry(stage: Stage, all_stages: list[Stage]) -> list[Stage]:
    """The stage, then the stages it is built FROM, up to the one on an image."""
    names = by_name(all_stages)
    chain = [stage]
    while chain[-1].base in names:
        chain.append(names[chain[-1].base])
    return chain


def base_image(stage: Stage, all_stages: list[Stage]) -> str:
    """The image a stage finally rests on, through earlier stages."""
    return ancestry(stage, all_stages)[-1].base


_FLAG = re.compile(r"--([\w-]+)(?:=(\S*))?\s*")


def flags_and_words(value: str) -> tuple[dict[str, str], list[str]]:
    """Split leading `--flag=value` options from the arguments (shell or JSON form)."""
    flags: dict[str, str] = {}
    rest = value
    while match := _FLAG.match(rest):
        flags[match.group(1)] = match.group(2) or ""
        rest = rest[match.end() :]
    if not rest.startswith("["):
        return flags, shlex.split(rest)
    words = json.loads(rest)
    assert isinstance(words, list)
    assert all(isinstance(w, str) for w in words)
    return flags, words


@dataclass(frozen=True)
class Copy:
    """A COPY or ADD: its stage, flags, sources, destination and working directory."""

    stage: Stage
    flags: dict[str, str]
    sources: list[str]
    destination: str
    workdir: str
    line: int


def copies(all_stages: list[Stage]) -> list[Copy]:
    """Every COPY and ADD, with the WORKDIR in force (inherited through FROM stage)."""
    found: list[Copy] = []
    workdirs: dict[str | None, str] = {}
    names = by_name(all_stages)
    for stage in all_stages:
        workdir = workdirs.get(stage.base, "/") if stage.base in names else "/"
        for instruction in stage.instructions:
            if instruction.keyword == "WORKDIR":
                workdir = str(PurePosixPath(workdir) / instruction.value)
            elif instruction.keyword in ("COPY", "ADD"):
                flags, words = flags_and_words(instruction.value)
                assert len(words) >= 2, f"line {instruction.line}: COPY needs source and dest"
                found.append(Copy(stage, flags, words[:-1], words[-1], workdir, instruction.line))
        workdirs[stage.name] = workdir
    return found


def landing(source: str, copy: Copy) -> PurePosixPath:
    """Where a copied file or directory ends up in the image."""
    destination = PurePosixPath(copy.workdir) / copy.destination
    into_directory = copy.destination.endswith(("/", "/.")) or copy.destination == "."
    if into_directory or len(copy.sources) > 1:
        return destination / PurePosixPath(source).name
    return destination


def context_copies(path: Path) -> list[Copy]:
    """COPY/ADD instructions that read the build context (not another stage or image)."""
    return [c for c in copies(load(path)) if "from" not in c.flags]


def final(path: Path) -> tuple[Stage, list[Stage]]:
    """The last stage (what `docker build` produces without --target) and all stages."""
    all_stages = load(path)
    return all_stages[-1], all_stages


def exec_form(instruction: Instruction) -> list[str]:
    """The argv of a CMD or ENTRYPOINT, which must use the exec (JSON) form."""
    assert instruction.value.startswith("["), (
        f"line {instruction.line}: use the JSON exec form so SIGTERM reaches celery as PID 1"
    )
    argv = json.loads(instruction.value)
    assert isinstance(argv, list)
    assert all(isinstance(a, str) for a in argv)
    return argv


def option(argv: list[str], short: str, long: str) -> str:
    """The value of `-X value`, `--long value` or `--long=value` in an argv."""
    for index, arg in enumerate(argv):
        if arg in (short, long):
            return argv[index + 1]
        if arg.startswith(long + "="):
            return arg.partition("=")[2]
    raise AssertionError(f"{short}/{long} missing from {argv}")


def command(stage: Stage, all_stages: list[Stage]) -> list[str]:
    """ENTRYPOINT + CMD of a stage (the last of each, inherited through FROM stage)."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for link in reversed(ancestry(stage, all_stages)):
        for instruction in link.instructions:
            if instruction.keyword == "ENTRYPOINT":
                entrypoint = exec_form(instruction)
            elif instruction.keyword == "CMD":
                cmd = exec_form(instruction)
    return entrypoint + cmd


def environment(stage: Stage, all_stages: list[Stage]) -> dict[str, str]:
    """ENV values in force in a stage (inherited through FROM stage; `KEY=value` form)."""
    env: dict[str, str] = {}
    for link in reversed(ancestry(stage, all_stages)):
        for instruction in link.all("ENV"):
            for pair in shlex.split(instruction.value):
                key, eq, value = pair.partition("=")
                assert eq, f"line {instruction.line}: use ENV KEY=value"
                env[key] = value
    return env


def module_file(module: str) -> list[PurePosixPath]:
    """Source files under services/*/ that define a dotted module."""
    relative = PurePosixPath(*module.split(".")).with_suffix(".py")
    return [
        PurePosixPath(p.relative_to(ROOT).as_posix())
        for p in sorted(ROOT.glob(f"services/*/{relative}"))
        if p.is_file()
    ]


def workspace_pyprojects() -> set[str]:
    """The root pyproject, the lock and every member's pyproject, as context paths."""
    members = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("services/*/pyproject.toml")}
    return {"pyproject.toml", "uv.lock", "shared/pyproject.toml", *members}


def project_name(relative: str) -> str:
    """`[project].name` of a pyproject in the repository."""
    data = tomllib.loads((ROOT / relative).read_text(encoding="utf-8"))
    name = data["project"]["name"]
    assert isinstance(name, str)
    return name


def requires_python() -> SpecifierSet:
    """The workspace's Python requirement."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return SpecifierSet(data["project"]["requires-python"])


# --- the parser itself ---------------------------------------------------------------------


def test_parser_joins_continuations_skips_comments_and_resolves_args() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=python:3.11-slim\n"
        "FROM ${BASE} AS build\n"
        "RUN echo one \\\n"
        "    # a comment inside the continuation\n"
        "\n"
        "    && echo two\n"
        'COPY --chown=1:1 ["a b.txt", "c.txt", "/dest/"]\n'
        "from build\n"
        'CMD ["run"]\n'
    )
    instructions = parse(text)
    assert [i.keyword for i in instructions] == ["ARG", "FROM", "RUN", "COPY", "FROM", "CMD"]
    assert instructions[2].value == "echo one && echo two"
    assert instructions[2].line == 4
    built, last = stages(instructions)
    assert (built.base, built.name) == ("python:3.11-slim", "build")
    assert (last.base, last.name) == ("build", None)
    (copy,) = copies([built, last])
    assert copy.flags == {"chown": "1:1"}
    assert copy.sources == ["a b.txt", "c.txt"]
    assert landing("a b.txt", copy) == PurePosixPath("/dest/a b.txt")
    assert command(last, [built, last]) == ["run"]
    with pytest.raises(AssertionError):
        parse("RUN echo \\\n")
    with pytest.raises(AssertionError):
        substitute("${UNSET}", {})


# --- both Dockerfiles ----------------------------------------------------------------------


@pytest.fixture(params=sorted(DOCKERFILES), name="kind")
def _kind(request: pytest.FixtureRequest) -> str:
    kind = request.param
    assert isinstance(kind, str)
    return kind


def test_dockerfile_exists(kind: str) -> None:
    assert DOCKERFILES[kind].is_file()


def test_context_sources_exist(kind: str) -> None:
    found = context_copies(DOCKERFILES[kind])
    assert found, "no COPY from the build context"
    for copy in found:
        for source in copy.sources:
            assert "://" not in source, f"{source}: fetch remote files in RUN, not ADD"
            assert not any(ch in source for ch in "*?["), f"{source}: name paths exactly"
            assert (ROOT / source).exists(), f"COPY source {source} is not in the repository"


def test_context_copies_keep_the_workspace_layout(kind: str) -> None:
    for copy in context_copies(DOCKERFILES[kind]):
        assert copy.workdir == "/app"
        for source in copy.sources:
            assert landing(source, copy) == PurePosixPath("/app", source), (
                f"{source} must land at /app/{source} for uv to see the workspace"
            )


def test_every_workspace_pyproject_is_copied_before_the_first_sync(kind: str) -> None:
    all_stages = load(DOCKERFILES[kind])
    instructions = [i for s in all_stages for i in s.instructions]
    first_sync = next(i.line for i in instructions if i.keyword == "RUN" and "uv sync" in i.value)
    copied_before = {
        source
        for copy in context_copies(DOCKERFILES[kind])
        if copy.line < first_sync
        for source in copy.sources
    }
    assert workspace_pyprojects() <= copied_before
    sources_before = {s for s in copied_before if not s.endswith(("pyproject.toml", "uv.lock"))}
    assert not sources_before, f"copy sources after the dependency layer: {sources_before}"


def test_uv_sync_installs_the_worker_package_from_the_lock(kind: str) -> None:
    package = project_name("services/transcription_worker/pyproject.toml")
    syncs = [
        shlex.split(i.value)
        for s in load(DOCKERFILES[kind])
        for i in s.all("RUN")
        if "uv sync" in i.value
    ]
    assert len(syncs) == 2, "one sync for the dependencies, one for the workspace packages"
    for argv in syncs:
        assert "--frozen" in argv
        assert "--no-dev" in argv
        assert option(argv, "--package", "--package") == package
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[1], "the runtime copies only the venv: install as wheels"


def test_worker_sources_are_copied(kind: str) -> None:
    sources = {s for c in context_copies(DOCKERFILES[kind]) for s in c.sources}
    (tasks,) = module_file("transcription_worker.tasks")
    assert str(tasks.parent) in sources
    assert "shared/voxflow" in sources


def test_from_references_name_earlier_stages(kind: str) -> None:
    all_stages = load(DOCKERFILES[kind])
    seen: set[str] = set()
    for stage in all_stages:
        for instruction in stage.instructions:
            if instruction.keyword in ("COPY", "ADD"):
                flags, _ = flags_and_words(instruction.value)
                if "from" in flags:
                    assert flags["from"] in seen, (
                        f"line {instruction.line}: --from={flags['from']} is not an earlier stage"
                    )
        if stage.name:
            assert stage.name not in seen, f"stage {stage.name} defined twice"
            seen.add(stage.name)


def test_runtime_copies_the_venv_and_models_from_stages(kind: str) -> None:
    runtime, all_stages = final(DOCKERFILES[kind])
    assert runtime.base not in by_name(all_stages), "the runtime starts from a clean base image"
    staged = {
        (c.flags["from"], source)
        for c in copies(all_stages)
        if c.stage is runtime and "from" in c.flags
        for source in c.sources
    }
    assert ("builder", "/app/.venv") in staged
    assert ("models", "/models") in staged
    assert not [c for c in context_copies(DOCKERFILES[kind]) if c.stage is runtime]


def test_final_stage_runs_as_non_root(kind: str) -> None:
    runtime, all_stages = final(DOCKERFILES[kind])
    users = [i for s in reversed(ancestry(runtime, all_stages)) for i in s.all("USER")]
    assert users, "the final stage sets no USER (it would run as root)"
    user = users[-1].value.split(":")[0]  # the last USER in force wins
    assert user not in ("root", "0"), f"USER {user} is root"
    if user.isdigit():
        created = " ".join(i.value for i in runtime.all("RUN"))
        assert f"--uid {user}" in created, f"no user with uid {user} is created"


def test_command_starts_the_transcription_worker(kind: str) -> None:
    runtime, all_stages = final(DOCKERFILES[kind])
    argv = command(runtime, all_stages)
    assert argv[:1] == ["celery"], argv
    module = option(argv, "-A", "--app")
    assert module_file(module), f"-A {module} is no module under services/*/"
    assert "worker" in argv
    assert option(argv, "-Q", "--queues") == TRANSCRIPTION_QUEUE
    assert option(argv, "-c", "--concurrency") == "1", "one worker process per container/GPU"
    assert option(argv, "-n", "--hostname") == f"{TRANSCRIPTION_QUEUE}@%h"


def test_healthcheck_pings_this_worker(kind: str) -> None:
    runtime, all_stages = final(DOCKERFILES[kind])
    (health,) = runtime.all("HEALTHCHECK")
    argv = command(runtime, all_stages)
    words = shlex.split(health.value.partition(" CMD ")[2])
    assert words[:1] == ["celery"]
    assert words[words.index("inspect") + 1] == "ping"
    assert option(words, "-A", "--app") == option(argv, "-A", "--app")
    node = option(argv, "-n", "--hostname").replace("%h", "${HOSTNAME}")
    assert option(words, "-d", "--destination") == node


def test_stops_with_sigterm(kind: str) -> None:
    runtime, _ = final(DOCKERFILES[kind])
    assert [i.value for i in runtime.all("STOPSIGNAL")] == ["SIGTERM"]


def test_sets_its_device_and_only_real_settings(kind: str) -> None:
    runtime, all_stages = final(DOCKERFILES[kind])
    env = environment(runtime, all_stages)
    assert env["VOXFLOW_WHISPER_DEVICE"] == DEVICES[kind]
    fields = {*TranscriptionWorkerSettings.model_fields, *QueueSettings.model_fields}
    fields |= {"log_level", "log_format"}  # read from the environment by voxflow.logs
    for key in env:
        if key.startswith("VOXFLOW_"):
            assert key.removeprefix("VOXFLOW_").lower() in fields, f"{key} is no setting"


def test_models_stage_downloads_with_faster_whisper(kind: str) -> None:
    models = by_name(load(DOCKERFILES[kind]))["models"]
    assert [arg_default(i.value) for i in models.all("ARG")] == [("WHISPER_MODELS", "")]
    (run,) = models.all("RUN")
    assert "from faster_whisper import download_model" in run.value
    assert "${WHISPER_MODELS}" in run.value
    runtime, all_stages = final(DOCKERFILES[kind])
    assert environment(runtime, all_stages)["HF_HOME"] == environment(models, all_stages)["HF_HOME"]


# --- one image each ------------------------------------------------------------------------


def test_cpu_image_is_python_slim_of_the_workspace_version() -> None:
    runtime, all_stages = final(CPU)
    image = base_image(runtime, all_stages)
    match = re.fullmatch(r"python:(\d+\.\d+)(-slim.*)?", image)
    assert match, f"{image} is not a python:X.Y-slim image"
    assert match.group(1) in requires_python()
    assert match.group(2), "use the slim variant"
    assert base_image(by_name(all_stages)["builder"], all_stages) == image, (
        "the venv's interpreter must be the runtime's: build on the same image"
    )


def test_cuda_image_is_a_cuda12_cudnn_runtime() -> None:
    runtime, all_stages = final(CUDA)
    image = base_image(runtime, all_stages)
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.\d+(?:\.\d+)?-cudnn\d*-runtime-ubuntu\d+\.\d+", image)
    assert match, f"{image} is not an nvidia/cuda cuDNN runtime image"
    assert match.group(1) == "12", "CTranslate2 4.x wheels need CUDA 12"
    assert base_image(by_name(all_stages)["builder"], all_stages) == image
    assert global_args(CUDA)["PYTHON_VERSION"] in requires_python()
    staged = {
        (c.flags.get("from"), source)
        for c in copies(all_stages)
        if c.stage is runtime
        for source in c.sources
    }
    assert ("builder", "/opt/python") in staged, "the uv-managed interpreter must be copied"
