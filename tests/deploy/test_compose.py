"""docker-compose.yml and docker-compose.dev.yml, checked offline.

Both files, and their merge as `docker compose -f ... -f ...` builds it, validate against
the Compose Specification's JSON Schema after interpolation with the files' own defaults.
Then the stack is held to the repository: each Voxflow service builds its image from the
right Dockerfile and starts a real entry point, sets only real settings, waits for what it
needs in an order that can complete, and the infra files it mounts agree with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import compose
from tests.deploy.dockerfile import command, final, healthcheck
from tests.deploy.repo import (
    IMAGES,
    ROOT,
    check_entrypoint,
    check_setting_names,
    image_of,
    project_versions,
    workspace_sources,
)

VOXFLOW_SERVICES = {
    "migrate", "ingest-api", "status-api", "transcription-worker", "transcription-worker-gpu",
    "llm-worker", "webhook-sender", "sweeper",
}  # fmt: skip
SERVERS = {"postgres", "redis", "minio", "minio-init"}
OBSERVABILITY = {"otel-collector", "jaeger", "prometheus", "grafana"}
WORKERS = {"transcription-worker", "llm-worker", "webhook-sender"}
SCALABLE = {*WORKERS, "ingest-api", "status-api"}
FILES = {"base": [compose.COMPOSE], "dev": [compose.COMPOSE_DEV],
         "merged": [compose.COMPOSE, compose.COMPOSE_DEV]}  # fmt: skip


def rendered(*paths: Path) -> tuple[dict[str, Any], set[str]]:
    """The files merged in order and interpolated with their defaults; the variables used."""
    merged: dict[str, Any] = {}
    for path in paths:
        merged = compose.merge(merged, compose.load(path))
    seen: set[str] = set()
    return compose.interpolate(merged, {}, seen), seen


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """docker-compose.yml as `docker compose config` would see it with an empty environment."""
    return rendered(compose.COMPOSE)[0]


@pytest.fixture(scope="module")
def dev_stack() -> dict[str, Any]:
    """docker-compose.yml with docker-compose.dev.yml on top."""
    return rendered(compose.COMPOSE, compose.COMPOSE_DEV)[0]


def effective_command(service: dict[str, Any]) -> list[str]:
    """The service's command, or its image's CMD when it sets none."""
    if "command" in service:
        argv = service["command"]
        assert isinstance(argv, list), "use the exec (list) form"
        return [str(a) for a in argv]
    image, _ = image_of(service["image"])
    runtime, all_stages = final(image.path)
    return command(runtime, all_stages)


# --- the helpers ---------------------------------------------------------------------------


def test_interpolation_and_merge_follow_compose_rules() -> None:
    seen: set[str] = set()
    env = {"SET": "x", "EMPTY": ""}
    assert compose.interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $$HOME $SET", env,
                               seen) == "x d d  $HOME x"  # fmt: skip
    assert seen == {"SET", "UNSET", "EMPTY"}
    with pytest.raises(AssertionError):
        compose.interpolate("${UNSET:?needed}", env, seen)
    base = {"command": ["a"], "volumes": ["v1"], "environment": {"A": "1"}}
    override = {"command": ["b"], "volumes": ["v2"], "environment": {"B": "2"}}
    assert compose.merge(base, override) == {
        "command": ["b"], "volumes": ["v1", "v2"], "environment": {"A": "1", "B": "2"}
    }  # fmt: skip
    assert compose.seconds("1m30s") == 90
    assert compose.seconds("30m") == 1800


# --- the specification -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FILES))
def test_validates_against_the_compose_specification(name: str) -> None:
    data, _ = rendered(*FILES[name])
    assert compose.schema_errors(data) == []


def test_the_schema_rejects_what_compose_rejects() -> None:
    assert compose.schema_errors({"services": {"a": {"image": "x", "stop_grace": "1s"}}})
    wrong_condition = {"b": {"condition": "when_ready"}}
    assert compose.schema_errors({"services": {"a": {"depends_on": wrong_condition}}})


def test_variables_named_like_settings_are_settings() -> None:
    for name, paths in FILES.items():
        _, seen = rendered(*paths)
        check_setting_names(seen, f"{name} compose interpolation")


# --- the stack -----------------------------------------------------------------------------


def test_the_full_stack_is_there(stack: dict[str, Any]) -> None:
    assert set(stack["services"]) == VOXFLOW_SERVICES | SERVERS | OBSERVABILITY


def test_voxflow_services_build_the_catalog_images(stack: dict[str, Any]) -> None:
    versions = project_versions()
    for name in VOXFLOW_SERVICES:
        service = stack["services"][name]
        image, tag = image_of(service["image"])
        assert service["build"] == {"context": ".", "dockerfile": image.dockerfile} | (
            {"args": service["build"]["args"]} if "args" in service["build"] else {}
        ), name
        assert tag == versions[image.package], f"{name}: tag {tag} is not the package version"


@pytest.mark.parametrize("which", ["stack", "dev_stack"])
def test_every_voxflow_command_is_a_real_entry_point(
    which: str, request: pytest.FixtureRequest
) -> None:
    data = request.getfixturevalue(which)
    for name in VOXFLOW_SERVICES:
        service = data["services"][name]
        argv = effective_command(service)
        check_entrypoint(argv, f"compose service {name}")
        if "image" in service:
            image, _ = image_of(service["image"])
            runtime, all_stages = final(image.path)
            # Same program as the image: compose only adds or changes flags.
            assert argv[0] == command(runtime, all_stages)[0], name


@pytest.mark.parametrize("which", ["stack", "dev_stack"])
def test_voxflow_services_set_only_real_settings(
    which: str, request: pytest.FixtureRequest
) -> None:
    data = request.getfixturevalue(which)
    for name in VOXFLOW_SERVICES:
        check_setting_names(compose.environment(data["services"][name]), f"compose {name}")


def test_every_service_sees_the_same_platform(stack: dict[str, Any]) -> None:
    shared = {
        "VOXFLOW_DATABASE_URL", "VOXFLOW_REDIS_URL", "VOXFLOW_STORAGE_BACKEND",
        "VOXFLOW_S3_BUCKET", "VOXFLOW_S3_ENDPOINT_URL", "VOXFLOW_WHISPER_MODEL",
    }  # fmt: skip
    envs = {name: compose.environment(stack["services"][name]) for name in VOXFLOW_SERVICES}
    for key in shared:
        values = {name: env.get(key) for name, env in envs.items()}
        assert len(set(values.values())) == 1, f"{key} differs: {values}"
    database = envs["migrate"]["VOXFLOW_DATABASE_URL"]
    postgres = compose.environment(stack["services"]["postgres"])
    assert database == (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    minio = compose.environment(stack["services"]["minio"])
    assert envs["sweeper"]["VOXFLOW_S3_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"]
    assert envs["sweeper"]["VOXFLOW_S3_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert envs["sweeper"]["VOXFLOW_S3_ADDRESSING_STYLE"] == "path", "MinIO needs path style"
    init = stack["services"]["minio-init"]["command"][0]
    assert f"local/{envs['sweeper']['VOXFLOW_S3_BUCKET']}" in init, "the bucket is made"


def test_dependencies_can_all_be_met(stack: dict[str, Any]) -> None:
    services = stack["services"]
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            target = services[dependency]
            condition = spec["condition"]
            if condition == "service_healthy":
                image_check = None
                if str(target.get("image", "")).startswith("voxflow/"):
                    image_check = healthcheck(final(image_of(target["image"])[0].path)[0])
                assert "healthcheck" in target or image_check, (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} must be a one-shot"
    # No cycles: a topological order exists.
    order: list[str] = []
    pending = dict.fromkeys(services)
    while pending:
        ready = [n for n in pending if set(services[n].get("depends_on") or {}) <= set(order)]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order += ready
        for n in ready:
            del pending[n]
    assert order.index("migrate") < order.index("ingest-api")
    assert order.index("minio-init") < order.index("transcription-worker")


def test_migrations_run_first(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert effective_command(services["migrate"]) == ["voxflow", "migrate"]
    for name in VOXFLOW_SERVICES - {"migrate"}:
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, name


def test_redis_keeps_messages(stack: dict[str, Any]) -> None:
    argv = [str(a) for a in stack["services"]["redis"]["command"]]
    assert argv[0] == "redis-server"
    assert argv[argv.index("--appendonly") + 1] == "yes"
    assert argv[argv.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(v.endswith(":/data") for v in stack["services"]["redis"]["volumes"])


def test_scalable_services_can_be_scaled(stack: dict[str, Any]) -> None:
    for name in SCALABLE:
        service = stack["services"][name]
        assert "container_name" not in service, f"{name}: --scale needs no container_name"
        for port in service.get("ports", []):
            published = str(port).rsplit(":", 1)[0]
            assert name in ("ingest-api", "status-api") or not published, name
    for name in WORKERS:
        assert "ports" not in stack["services"][name], f"{name}: replicas cannot share a port"


def test_workers_get_time_to_finish_or_hand_back(stack: dict[str, Any]) -> None:
    for name in (*WORKERS, "transcription-worker-gpu"):
        service = stack["services"][name]
        soft = float(compose.environment(service)["VOXFLOW_SOFT_SHUTDOWN_SECONDS"])
        grace = compose.seconds(service["stop_grace_period"])
        assert grace >= soft + 20, f"{name}: stop_grace_period must outlast the soft shutdown"
    gpu = stack["services"]["transcription-worker-gpu"]
    assert compose.seconds(gpu["stop_grace_period"]) >= 1800


def test_gpu_worker_is_a_profile_with_a_gpu(stack: dict[str, Any]) -> None:
    gpu = stack["services"]["transcription-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == IMAGES["voxflow/transcription-worker-cuda"].dockerfile
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert compose.environment(gpu)["VOXFLOW_WHISPER_DEVICE"] == "cuda"
    assert "profiles" not in stack["services"]["transcription-worker"]


def test_bind_mounts_exist(dev_stack: dict[str, Any]) -> None:
    for name, service in dev_stack["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
        for watch in (service.get("develop") or {}).get("watch", []):
            assert (ROOT / watch["path"]).exists(), f"{name}: watches {watch['path']}"


def test_prometheus_scrapes_the_compose_services(stack: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        for sd in job["dns_sd_configs"]:
            for target in sd["names"]:
                assert target in stack["services"], f"prometheus scrapes unknown {target}"
                service = stack["services"][target]
                argv = effective_command(service)
                port = argv[argv.index("--port") + 1] if "--port" in argv else "9100"
                assert sd["port"] == int(port), f"{target} serves /metrics on {port}"
    mounts = stack["services"]["prometheus"]["volumes"]
    assert "./infra/prometheus:/etc/prometheus:ro" in mounts


def test_grafana_and_the_collector_read_the_infra_files(stack: dict[str, Any]) -> None:
    grafana = stack["services"]["grafana"]["volumes"]
    assert "./infra/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./infra/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    collector = stack["services"]["otel-collector"]
    assert "./infra/otel-collector/config.yaml:/etc/otelcol/config.yaml:ro" in collector["volumes"]
    assert collector["command"] == ["--config=/etc/otelcol/config.yaml"]
    endpoint = compose.environment(stack["services"]["ingest-api"])["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint == "http://otel-collector:4318", "OTLP/HTTP, what the SDK sends"


def test_dev_mounts_the_sources_and_reloads(dev_stack: dict[str, Any]) -> None:
    for name in VOXFLOW_SERVICES:
        service = dev_stack["services"][name]
        env = compose.environment(service)
        assert env["PYTHONPATH"] == "/app/src"
        assert env["VOXFLOW_LOG_LEVEL"] == "DEBUG"
        image, _ = image_of(service["image"])
        mounted = {
            str(v).split(":")[0].removeprefix("./"): str(v).split(":")[1]
            for v in service["volumes"]
            if str(v).startswith("./")
        }
        for package_dir in sorted(workspace_sources(image.package)):
            assert mounted.get(package_dir) == f"/app/src/{Path(package_dir).name}", (
                f"{name}: mount {package_dir} at /app/src"
            )
        argv = effective_command(service)
        if argv[0] == "uvicorn":
            assert "--reload" in argv, f"{name}: uvicorn --reload"
        elif name != "migrate":
            actions = {w["action"] for w in service["develop"]["watch"]}
            assert actions == {"restart"}, f"{name}: restart on an edit"
