"""k8s/: every overlay renders, validates, and holds together (offline).

`kubectl kustomize` renders each overlay; every object validates against the Kubernetes
schemas of the cluster version terraform deploys (kubernetes-validate, strict) or, for
KEDA's kinds, against KEDA's CRD schemas. Then the semantics an operator relies on: probes,
resources and disruption budgets everywhere, real commands and settings, references that
resolve, worker shutdown that outlasts a job, and GPU scheduling that matches the node group.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import kube
from tests.deploy.dockerfile import command, final, option
from tests.deploy.repo import (
    IMAGES,
    ROOT,
    UID,
    check_entrypoint,
    check_setting_names,
    image_of,
    project_versions,
)
from tests.deploy.terraform import kustomize_env_keys, terraform_env, variable_default
from voxflow.queue.names import LLM_QUEUE, TRANSCRIPTION_QUEUE, WEBHOOK_QUEUE
from voxflow.web.health import router as health_router

OVERLAYS = kube.overlays()
DEPLOYMENTS = {
    "ingest-api", "status-api", "transcription-worker", "llm-worker", "webhook-sender", "sweeper",
}  # fmt: skip
APIS = {"ingest-api": 8000, "status-api": 8001}
# The queues each worker consumes; the first names its Celery node (`<queue>@%h`).
WORKERS = {"transcription-worker": (TRANSCRIPTION_QUEUE,), "llm-worker": (LLM_QUEUE,),
           "webhook-sender": (WEBHOOK_QUEUE,)}  # fmt: skip
DOCS = ROOT / "docs" / "deployment.md"
# Kubernetes version the manifests are validated for: the one terraform/ deploys.
KUBERNETES_VERSION = variable_default("kubernetes_version")


def test_both_overlays_exist() -> None:
    assert OVERLAYS == ["dev", "prod-gpu"]


@pytest.fixture(params=OVERLAYS, name="overlay", scope="module")
def _overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(name="manifests")
def _manifests(overlay: str) -> list[kube.Manifest]:
    return kube.render(overlay)


def voxflow_deployments(manifests: list[kube.Manifest]) -> dict[str, kube.Manifest]:
    """The Deployments of Voxflow's own services."""
    found = kube.of_kind(manifests, "Deployment")
    assert set(found) == DEPLOYMENTS
    return found


def operator_provided() -> set[str]:
    """Secrets and ConfigMaps docs/deployment.md says the operator creates."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("### Secrets the operator provides", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.MULTILINE))


# --- schemas -------------------------------------------------------------------------------


def test_the_kubernetes_version_has_schemas() -> None:
    import kubernetes_validate  # type: ignore[import-untyped]

    assert KUBERNETES_VERSION in kubernetes_validate.utils.all_versions() or any(
        v.startswith(f"{KUBERNETES_VERSION}.") for v in kubernetes_validate.utils.all_versions()
    )


def test_every_object_validates(manifests: list[kube.Manifest]) -> None:
    errors = {
        f"{m['kind']}/{m['metadata']['name']}": kube.validate(m, KUBERNETES_VERSION)
        for m in manifests
    }
    assert {k: v for k, v in errors.items() if v} == {}


def test_the_validators_reject_unknown_fields() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                  "spec": {"selector": {}, "template": {"spec": {"containers": []}},
                           "replica": 2}}  # fmt: skip
    assert kube.validate(deployment, KUBERNETES_VERSION)
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
              "metadata": {"name": "x"},
              "spec": {"scaleTargetRef": {"name": "x"}, "maxReplicas": 3,
                       "triggers": [{"type": "postgresql", "metadata": {}}]}}  # fmt: skip
    assert kube.validate(scaled, KUBERNETES_VERSION)
    auth = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": "x"},
            "spec": {"secretTargetRef": [{"parameter": "connection", "name": "s"}]}}  # fmt: skip
    assert kube.validate(auth, KUBERNETES_VERSION), "key is required"


def test_keda_replica_bounds_hold(manifests: list[kube.Manifest]) -> None:
    # The CRD's CEL rule (x-kubernetes-validations), which JSON Schema cannot express.
    for name, scaled in kube.of_kind(manifests, "ScaledObject").items():
        spec = scaled["spec"]
        assert spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100), name


# --- workloads -----------------------------------------------------------------------------


def test_every_deployment_has_probes_resources_and_a_budget(
    manifests: list[kube.Manifest],
) -> None:
    budgets = kube.of_kind(manifests, "PodDisruptionBudget")
    for name, deployment in kube.of_kind(manifests, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        for container in kube.containers(deployment):
            where = f"{name}/{container['name']}"
            assert "readinessProbe" in container, f"{where}: no readiness probe"
            assert "livenessProbe" in container, f"{where}: no liveness probe"
            requests = container["resources"]["requests"]
            assert {"cpu", "memory"} <= set(requests), f"{where}: requests cpu and memory"
            assert "memory" in container["resources"]["limits"], f"{where}: no memory limit"
        covering = [b for b in budgets.values() if kube.selects(b["spec"]["selector"], labels)]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
        (budget,) = covering
        assert "maxUnavailable" in budget["spec"] or "minAvailable" in budget["spec"]


def test_pods_run_as_the_image_user_without_privileges(manifests: list[kube.Manifest]) -> None:
    workloads = [*kube.of_kind(manifests, "Deployment").values(),
                 *kube.of_kind(manifests, "Job").values()]  # fmt: skip
    for workload in workloads:
        spec = kube.pod_spec(workload)
        name = workload["metadata"]["name"]
        if name == "minio-bucket":
            continue  # the dev overlay's MinIO client
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == UID, name
        assert spec["serviceAccountName"] == "voxflow", name
        for container in kube.containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: a writable /tmp (metrics files, scratch)"


def test_images_are_the_catalog_images_at_the_package_version(
    overlay: str, manifests: list[kube.Manifest]
) -> None:
    versions = project_versions()
    registry = terraform_env().get("IMAGE_REGISTRY") if overlay == "prod-gpu" else None
    for workload in [*voxflow_deployments(manifests).values(),
                     kube.of_kind(manifests, "Job")["voxflow-migrate"]]:  # fmt: skip
        for container in kube.containers(workload):
            image, tag = image_of(container["image"])
            assert tag == versions[image.package], container["image"]
            if registry:
                assert container["image"].startswith(f"{registry}/"), container["image"]
    worker = voxflow_deployments(manifests)["transcription-worker"]
    image, _ = image_of(kube.containers(worker)[0]["image"])
    expected = "voxflow/transcription-worker-cuda" if overlay == "prod-gpu" else "voxflow/"
    assert image.name.startswith(expected)


def test_commands_are_real_entry_points(manifests: list[kube.Manifest]) -> None:
    workloads = [*voxflow_deployments(manifests).values(),
                 kube.of_kind(manifests, "Job")["voxflow-migrate"]]  # fmt: skip
    for workload in workloads:
        for container in kube.containers(workload):
            argv = [*container.get("command", []), *container.get("args", [])]
            image, _ = image_of(container["image"])
            runtime, all_stages = final(image.path)
            if not argv:
                argv = command(runtime, all_stages)
            check_entrypoint(argv, f"{workload['metadata']['name']}")
            # Same program as the image: the manifest only adds or changes arguments.
            assert argv[0] == command(runtime, all_stages)[0], workload["metadata"]["name"]
    migrate = kube.containers(kube.of_kind(manifests, "Job")["voxflow-migrate"])[0]
    assert migrate["command"] == ["voxflow", "migrate"]


def test_apis_probe_their_real_health_endpoints(manifests: list[kube.Manifest]) -> None:
    routes = {getattr(route, "path", "") for route in health_router.routes}
    deployments = voxflow_deployments(manifests)
    for name, port in APIS.items():
        (container,) = kube.containers(deployments[name])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"http": port}
        assert option(container["command"], "--port", "--port") == str(port)
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, name
            assert path in routes
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port)


def test_workers_are_probed_like_their_image(manifests: list[kube.Manifest]) -> None:
    deployments = voxflow_deployments(manifests)
    for name, queues in WORKERS.items():
        (container,) = kube.containers(deployments[name])
        argv = container["command"]
        assert option(argv, "-Q", "--queues").split(",") == list(queues)
        node = option(argv, "-n", "--hostname")
        assert node == f"{queues[0]}@%h"
        shell = container["livenessProbe"]["exec"]["command"]
        assert shell[:2] == ["sh", "-c"], "the shell expands $HOSTNAME (the pod name)"
        words = shlex.split(shell[2])
        assert words[:1] == ["celery"]
        assert words[words.index("inspect") + 1] == "ping"
        assert option(words, "-A", "--app") == option(argv, "-A", "--app")
        assert option(words, "-d", "--destination") == node.replace("%h", "$HOSTNAME")
        for probe in ("startupProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9100}


def test_workers_outlast_their_soft_shutdown(overlay: str, manifests: list[kube.Manifest]) -> None:
    deployments = voxflow_deployments(manifests)
    minimum = {"transcription-worker": 1800 if overlay == "prod-gpu" else 600, "llm-worker": 120,
               "webhook-sender": 60}  # fmt: skip
    for name, floor in minimum.items():
        spec = kube.pod_spec(deployments[name])
        grace = spec["terminationGracePeriodSeconds"]
        assert grace >= floor, f"{name}: a grace period of {grace}s is too short"
        env = {e["name"]: e.get("value") for e in kube.containers(deployments[name])[0]["env"]}
        soft = float(env["VOXFLOW_SOFT_SHUTDOWN_SECONDS"])
        assert soft <= grace - 30, f"{name}: hand the job back before Kubernetes kills the pod"


def test_voxflow_containers_set_only_real_settings(manifests: list[kube.Manifest]) -> None:
    config_maps = kube.of_kind(manifests, "ConfigMap")
    secrets = kube.of_kind(manifests, "Secret")
    for workload in [*voxflow_deployments(manifests).values(),
                     *kube.of_kind(manifests, "Job").values()]:  # fmt: skip
        for container in kube.containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            check_setting_names([e["name"] for e in container.get("env", [])], where)
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef")
                found = config_maps.get(ref["name"]) or secrets.get(ref["name"])
                if found:
                    check_setting_names(list(found.get("data") or {}), f"{where} {ref['name']}")


def referenced_names(manifests: list[kube.Manifest]) -> dict[str, set[str]]:
    """ConfigMaps and Secrets the objects refer to, by kind."""
    refs: dict[str, set[str]] = {"ConfigMap": set(), "Secret": set()}
    for workload in [*kube.of_kind(manifests, "Deployment").values(),
                     *kube.of_kind(manifests, "StatefulSet").values(),
                     *kube.of_kind(manifests, "Job").values()]:  # fmt: skip
        spec = kube.pod_spec(workload)
        for container in kube.containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    refs["ConfigMap"].add(source["configMapRef"]["name"])
                if "secretRef" in source:
                    refs["Secret"].add(source["secretRef"]["name"])
            for env in container.get("env", []):
                value_from = env.get("valueFrom", {})
                if "secretKeyRef" in value_from:
                    refs["Secret"].add(value_from["secretKeyRef"]["name"])
                if "configMapKeyRef" in value_from:
                    refs["ConfigMap"].add(value_from["configMapKeyRef"]["name"])
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                refs["ConfigMap"].add(volume["configMap"]["name"])
            if "secret" in volume:
                refs["Secret"].add(volume["secret"]["secretName"])
    for auth in kube.of_kind(manifests, "TriggerAuthentication").values():
        refs["Secret"] |= {r["name"] for r in auth["spec"].get("secretTargetRef", [])}
    for ingress in kube.of_kind(manifests, "Ingress").values():
        refs["Secret"] |= {t["secretName"] for t in ingress["spec"].get("tls", [])}
    return refs


def test_every_secret_and_config_map_is_defined_or_documented(
    overlay: str, manifests: list[kube.Manifest]
) -> None:
    documented = operator_provided()
    missing = []
    for kind, names in referenced_names(manifests).items():
        defined = set(kube.of_kind(manifests, kind))
        missing += [f"{kind}/{n}" for n in sorted(names - defined - documented)]
    assert missing == [], f"{overlay}: neither defined nor documented as operator-provided"
    if overlay == "dev":
        assert "voxflow-secrets" in kube.of_kind(manifests, "Secret"), "dev is self-contained"


def test_references_between_objects_resolve(manifests: list[kube.Manifest]) -> None:
    deployments = kube.of_kind(manifests, "Deployment")
    services = kube.of_kind(manifests, "Service")
    pods = {**deployments, **kube.of_kind(manifests, "StatefulSet")}
    for name, service in services.items():
        targets = [p for p in pods.values()
                   if kube.selects(service["spec"]["selector"],
                                   p["spec"]["template"]["metadata"]["labels"])]  # fmt: skip
        assert len(targets) == 1, f"Service {name} selects {len(targets)} workloads"
        ports = {p["name"] for c in kube.containers(targets[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name}: no port {port['targetPort']}"
    for name, ingress in kube.of_kind(manifests, "Ingress").items():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services, f"Ingress {name} -> {backend['name']}"
                names = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in names
                assert path["path"] not in ("/metrics", "/healthz", "/readyz"), "keep internal"
    autoscaled = {}
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for name, scaler in kube.of_kind(manifests, kind).items():
            target = scaler["spec"]["scaleTargetRef"]["name"]
            assert target in deployments, f"{kind} {name} scales unknown {target}"
            assert target not in autoscaled, f"{target} has two autoscalers"
            autoscaled[target] = kind
    assert autoscaled == {"ingest-api": "HorizontalPodAutoscaler",
                          "status-api": "HorizontalPodAutoscaler",
                          "transcription-worker": "ScaledObject",
                          "llm-worker": "ScaledObject",
                          "webhook-sender": "ScaledObject"}  # fmt: skip
    for target in autoscaled:
        assert "replicas" not in deployments[target]["spec"], (
            f"{target}: `replicas` would fight the autoscaler on every apply"
        )


def test_apis_scale_on_cpu(manifests: list[kube.Manifest]) -> None:
    for name, hpa in kube.of_kind(manifests, "HorizontalPodAutoscaler").items():
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "Resource"
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], name


def test_the_migration_job_runs_before_rollouts_can_need_it(
    manifests: list[kube.Manifest],
) -> None:
    job = kube.of_kind(manifests, "Job")["voxflow-migrate"]
    assert job["spec"]["backoffLimit"] >= 1
    assert kube.pod_spec(job)["restartPolicy"] in ("OnFailure", "Never")


def test_every_object_is_in_the_namespace(manifests: list[kube.Manifest]) -> None:
    for manifest in manifests:
        if manifest["kind"] != "Namespace":
            assert manifest["metadata"].get("namespace") == "voxflow", manifest["metadata"]


# --- the overlays --------------------------------------------------------------------------


def test_dev_keda_reaches_postgres_from_its_own_namespace() -> None:
    secrets = (ROOT / "k8s/overlays/dev/secrets.env").read_text(encoding="utf-8")
    url = re.search(r"^VOXFLOW_DATABASE_URL=(\S+)$", secrets, re.MULTILINE)
    assert url
    host = re.sub(r"^postgresql://[^@]*@([^:/]+).*$", r"\1", url.group(1))
    assert host.endswith(".svc.cluster.local"), "KEDA runs in the keda namespace"
    servers = (ROOT / "k8s/overlays/dev/servers.env").read_text(encoding="utf-8")
    password = re.search(r"^POSTGRES_PASSWORD=(\S+)$", servers, re.MULTILINE)
    assert password
    assert f":{password.group(1)}@" in url.group(1)


def test_prod_gpu_worker_is_scheduled_on_the_gpu_node_group() -> None:
    from tests.deploy.terraform import gpu_node_label, gpu_node_taint

    manifests = kube.render("prod-gpu")
    worker = voxflow_deployments(manifests)["transcription-worker"]
    spec = kube.pod_spec(worker)
    (container,) = spec["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] == gpu_node_label()
    taint = gpu_node_taint()
    effects = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute"}
    assert {"key": taint["key"], "operator": "Exists", "effect": effects[taint["effect"]]} in (
        spec["tolerations"]
    )
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HF_HUB_OFFLINE"] == "1", "the model is baked into the image"
    scaled = kube.of_kind(manifests, "ScaledObject")["transcription-worker"]["spec"]
    assert scaled["minReplicaCount"] == 0, "the GPU node group scales from zero"
    capacity = int(variable_default("gpu_node_max")) * int(variable_default("gpus_per_node"))
    assert scaled["maxReplicaCount"] <= capacity, "more workers than GPUs the group can have"


def test_prod_gpu_takes_its_values_from_terraform() -> None:
    manifests = kube.render("prod-gpu")
    values = terraform_env()
    assert set(values) == kustomize_env_keys(), "terraform.env is terraform's kustomize_env"
    assert values["AWS_REGION"] == variable_default("region")
    assert values["INGEST_HOST"] == f"ingest.{variable_default('domain')}"
    assert values["STATUS_HOST"] == f"status.{variable_default('domain')}"
    (account,) = set(re.findall(r"\b(\d{12})\b", "\n".join(values.values())))
    environment = variable_default("environment")
    assert values["VOXFLOW_ROLE_ARN"] == f"arn:aws:iam::{account}:role/voxflow-{environment}-pods"
    assert values["S3_BUCKET"] == f"voxflow-{environment}-audio-{account}"
    (account_sa,) = kube.of_kind(manifests, "ServiceAccount").values()
    assert account_sa["metadata"]["name"] == variable_default("kubernetes_service_account")
    assert account_sa["metadata"]["namespace"] == variable_default("kubernetes_namespace")
    assert (
        account_sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        == values["VOXFLOW_ROLE_ARN"]
    )
    (config,) = [m for m in manifests if m["metadata"]["name"].startswith("voxflow-config")]
    assert config["data"]["VOXFLOW_S3_BUCKET"] == values["S3_BUCKET"]
    assert config["data"]["VOXFLOW_S3_REGION"] == values["AWS_REGION"]
    assert config["data"]["VOXFLOW_PUBLIC_STATUS_URL"] == values["PUBLIC_STATUS_URL"]
    ingresses = kube.of_kind(manifests, "Ingress")
    hosts = {name: i["spec"]["rules"][0]["host"] for name, i in ingresses.items()}
    assert hosts == {"ingest-api": values["INGEST_HOST"], "status-api": values["STATUS_HOST"]}
    for ingress in kube.of_kind(manifests, "Ingress").values():
        (tls,) = ingress["spec"]["tls"]
        assert tls["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    assert not [m for m in manifests if m["metadata"]["name"] == "voxflow-terraform"], (
        "terraform.env's ConfigMap is local to kustomize"
    )


def test_prod_gpu_llm_router_config_loads() -> None:
    from llm_worker.router.config import load_config

    config = load_config(ROOT / "k8s/overlays/prod-gpu/llm.yaml")
    assert [d.provider for d in config.deployments][-1] == "local", "local fallback last"
    manifests = kube.render("prod-gpu")
    (container,) = kube.containers(voxflow_deployments(manifests)["llm-worker"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert Path(env["VOXFLOW_LLM_CONFIG_FILE"]).parent == Path(mounts["llm-config"])


def test_one_model_for_the_api_and_the_workers(manifests: list[kube.Manifest]) -> None:
    # The ingestion API stamps VOXFLOW_WHISPER_MODEL on each job: the workers must agree.
    for deployment in voxflow_deployments(manifests).values():
        for container in kube.containers(deployment):
            names = {e["name"] for e in container.get("env", [])}
            assert "VOXFLOW_WHISPER_MODEL" not in names, "set it in voxflow-config, for all"


def test_no_images_outside_the_catalog_run_voxflow(manifests: list[kube.Manifest]) -> None:
    for workload in [*kube.of_kind(manifests, "Deployment").values(),
                     *kube.of_kind(manifests, "Job").values()]:  # fmt: skip
        for container in kube.containers(workload):
            reference: Any = container["image"]
            if "voxflow/" in reference:
                image, _ = image_of(reference)
                assert image.name in IMAGES
