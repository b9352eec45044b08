"""Job webhooks in every deployment: their queue has a consumer, their secret its readers.

Deliveries are Celery tasks on a queue of their own (voxflow.queue.names.WEBHOOK_QUEUE),
which the webhook sender consumes, and it alone (`-Q webhooks`, as `voxflow run` starts it);
the LLM worker consumes `llm` only. The ingestion API (it refuses a `webhook_url` without a
secret) and the webhook sender (it signs) read VOXFLOW_WEBHOOK_SECRET. The secret is
optional: unset, webhooks are off; empty, it is malformed and stops the services. So compose
passes it without a value (taken from the environment or `.env`, else left unset) and
Kubernetes reads an optional key of a Secret.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from tests.deploy import compose, kube
from tests.deploy.dockerfile import command, final, option
from tests.deploy.repo import IMAGES, ROOT, image_of
from voxflow.jobs.enqueue import TASK_FOR_STATUS
from voxflow.queue import names
from voxflow.webhooks.signing import decode_secret

SECRET = "VOXFLOW_WEBHOOK_SECRET"
# Every queue the platform publishes to: each must have a consumer in every deployment.
QUEUES = frozenset(value for key, value in vars(names).items() if key.endswith("_QUEUE"))
# The compose services and Kubernetes Deployments that consume the queues (same names), and
# the images they run: each queue exactly these.
CONSUMERS = {"llm-worker": {names.LLM_QUEUE}, "webhook-sender": {names.WEBHOOK_QUEUE}}
CONSUMER_IMAGES = {"voxflow/llm-worker": {names.LLM_QUEUE},
                   "voxflow/webhook-sender": {names.WEBHOOK_QUEUE}}  # fmt: skip
COMPOSE_FILES = {"base": [compose.COMPOSE], "dev": [compose.COMPOSE, compose.COMPOSE_DEV]}
# The compose services and Kubernetes Deployments that read the secret (same names).
READERS = ("ingest-api", "webhook-sender")
DOCS = ROOT / "docs" / "deployment.md"


def consumed(argv: list[str]) -> set[str]:
    """The queues a `celery ... worker -Q a,b` command line consumes (none for others)."""
    if argv[:1] != ["celery"] or "worker" not in argv:
        return set()
    return set(option(argv, "-Q", "--queues").split(","))


def compose_stack(name: str) -> dict[str, Any]:
    """The compose files merged in order, as YAML (values without interpolation)."""
    merged: dict[str, Any] = {}
    for path in COMPOSE_FILES[name]:
        merged = compose.merge(merged, compose.load(path))
    return merged


def compose_command(service: dict[str, Any]) -> list[str]:
    """The service's command, or its image's CMD when it sets none."""
    if "command" in service:
        return [str(a) for a in service["command"]]
    image, _tag = image_of(str(service["image"]))
    return command(*final(image.path))


def image_command(image: str) -> list[str]:
    """ENTRYPOINT + CMD of a catalog image."""
    return command(*final(IMAGES[image].path))


def test_the_queues_are_the_ones_the_tasks_are_published_to() -> None:
    assert names.WEBHOOK_QUEUE in QUEUES
    assert {queue for _task, queue in TASK_FOR_STATUS.values()} <= QUEUES


def webhook_consumers(commands: dict[str, list[str]]) -> set[str]:
    """The names whose command consumes the webhook queue."""
    return {name for name, argv in commands.items() if names.WEBHOOK_QUEUE in consumed(argv)}


# --- the webhook sender consumes the webhook queue, the LLM worker its own -------------------


def test_the_consumer_images_consume_their_queues() -> None:
    for image, queues in CONSUMER_IMAGES.items():
        assert consumed(image_command(image)) == queues, image


def test_every_queue_has_an_image_that_consumes_it() -> None:
    commands = {name: image_command(name) for name in IMAGES}
    found = set().union(*(consumed(argv) for argv in commands.values()))
    assert found >= QUEUES, f"no image consumes {sorted(QUEUES - found)}"
    assert webhook_consumers(commands) == {"voxflow/webhook-sender"}, "one sender of webhooks"


@pytest.mark.parametrize("name", sorted(COMPOSE_FILES))
def test_compose_webhook_sender_consumes_the_webhook_queue(name: str) -> None:
    services = compose_stack(name)["services"]
    for service, queues in CONSUMERS.items():
        assert consumed(compose_command(services[service])) == queues, service
    commands = {service: compose_command(s) for service, s in services.items()
                if str(s.get("image", "")).startswith("voxflow/")}  # fmt: skip
    found = set().union(*(consumed(argv) for argv in commands.values()))
    assert found >= QUEUES, f"{name}: nobody consumes {sorted(QUEUES - found)}"
    assert webhook_consumers(commands) == {"webhook-sender"}, f"{name}: one sender of webhooks"


@pytest.mark.parametrize("overlay", kube.overlays())
def test_kubernetes_webhook_sender_consumes_the_webhook_queue(overlay: str) -> None:
    deployments = kube.of_kind(kube.render(overlay), "Deployment")
    for deployment, queues in CONSUMERS.items():
        (container,) = kube.containers(deployments[deployment])
        assert consumed(container["command"]) == queues, deployment
    commands = {f"{d}/{c['name']}": [*c.get("command", []), *c.get("args", [])]
                for d, deployment in deployments.items()
                for c in kube.containers(deployment)}  # fmt: skip
    found = set().union(*(consumed(argv) for argv in commands.values()))
    assert found >= QUEUES, f"{overlay}: nobody consumes {sorted(QUEUES - found)}"
    assert webhook_consumers(commands) == {"webhook-sender/webhook-sender"}, overlay


# --- the secret reaches the ingestion API and the webhook sender ----------------------------


@pytest.mark.parametrize("name", sorted(COMPOSE_FILES))
def test_compose_passes_the_secret_unset_unless_provided(name: str) -> None:
    services = compose_stack(name)["services"]
    for service in READERS:
        environment = services[service]["environment"]
        assert isinstance(environment, dict), f"{service}: environment as a mapping"
        assert SECRET in environment, f"{service} does not get {SECRET}"
        # No value: compose takes it from the shell or .env, or leaves it out of the
        # container. `${VOXFLOW_WEBHOOK_SECRET:-}` would set it empty: a malformed secret.
        assert environment[SECRET] is None, f"{service}: pass {SECRET} without a value"
    others = [
        n for n, s in services.items() if n not in READERS and SECRET in compose.environment(s)
    ]
    assert not others, f"{others} get {SECRET} but do not read it"


def operator_secret_rows() -> dict[str, str]:
    """Rows of docs/deployment.md's table of operator-provided Secrets, by name."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Secrets the operator provides", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \|(.*)$", section, re.MULTILINE)
    return dict(rows)


@pytest.mark.parametrize("overlay", kube.overlays())
def test_kubernetes_reads_the_secret_from_an_optional_key(overlay: str) -> None:
    manifests = kube.render(overlay)
    deployments = kube.of_kind(manifests, "Deployment")
    secrets = kube.of_kind(manifests, "Secret")
    documented = operator_secret_rows()
    for name in READERS:
        (container,) = kube.containers(deployments[name])
        entries = [e for e in container.get("env", []) if e["name"] == SECRET]
        assert len(entries) == 1, f"{overlay} {name}: no {SECRET} in env"
        ref = entries[0]["valueFrom"]["secretKeyRef"]
        assert ref["key"] == SECRET
        assert ref.get("optional") is True, f"{name}: pods must start without the secret"
        assert ref["name"] in secrets or ref["name"] in documented, ref["name"]
        if ref["name"] in documented:
            assert SECRET in documented[ref["name"]], f"docs: list {SECRET} in {ref['name']}"
    others = [name for name, deployment in deployments.items() if name not in READERS
              for c in kube.containers(deployment)
              if SECRET in {e["name"] for e in c.get("env", [])}]  # fmt: skip
    assert not others, f"{overlay}: {others} get {SECRET} but do not read it"


@pytest.mark.parametrize("overlay", kube.overlays())
def test_a_secret_an_overlay_provides_is_well_formed(overlay: str) -> None:
    for name, secret in kube.of_kind(kube.render(overlay), "Secret").items():
        encoded = (secret.get("data") or {}).get(SECRET)
        if encoded is not None:
            try:
                decode_secret(base64.b64decode(encoded).decode())
            except ValueError as exc:
                pytest.fail(f"{overlay} Secret {name}: {SECRET}: {exc}")


def test_the_docs_show_how_to_provide_the_secret() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert f"--from-literal={SECRET}=" in text
    assert f"-A webhook_sender.tasks worker -Q {names.WEBHOOK_QUEUE}" in text
    assert f"-Q {names.LLM_QUEUE},{names.WEBHOOK_QUEUE}" not in text
