"""terraform/, checked offline.

Every file parses with python-hcl2; every variable is described, typed, defaulted and used;
every reference (outputs included) names a resource, data source, local or variable that
exists; no secret is written into the configuration or its state; the pieces Voxflow needs
are there with the settings it relies on. Where Terraform itself and a local copy of the
AWS provider are available, `terraform validate` and `terraform fmt -check` run too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest

from tests.deploy import terraform as tf
from tests.deploy.repo import IMAGES

SOURCES = {path.name: path.read_text(encoding="utf-8") for path in tf.TERRAFORM.glob("*.tf")}
ALL = "\n".join(SOURCES.values())
# Where a filesystem mirror of the AWS provider may be (terraform init -plugin-dir).
PLUGIN_DIRS = [os.environ.get("TF_PLUGIN_DIR", ""), "/opt/tf-plugins"]


def resource(kind: str, name: str) -> dict[str, object]:
    """One resource block's arguments, unquoted."""
    for _, block in tf.blocks("resource"):
        for found_kind, named in block.items():
            if tf.unquote(found_kind) == kind:
                for found_name, body in named.items():
                    if tf.unquote(found_name) == name:
                        unquoted = tf.unquote(body)
                        assert isinstance(unquoted, dict)
                        return unquoted
    raise AssertionError(f"no resource {kind}.{name}")


def test_every_file_parses() -> None:
    assert set(tf.files()) == set(SOURCES)
    assert {"variables.tf", "outputs.tf", "versions.tf"} <= set(SOURCES)


def test_every_variable_is_described_typed_defaulted_and_used() -> None:
    for name, body in tf.variables().items():
        description = tf.unquote(body.get("description", ""))
        assert len(description) > 10, f"variable {name}: describe it"
        assert "type" in body, f"variable {name}: give it a type"
        assert "default" in body, f"variable {name}: give it a sane default"
        uses = len(re.findall(rf"\bvar\.{name}\b", ALL))
        assert uses >= 1, f"variable {name} is never used"


def test_every_output_is_described_and_every_reference_resolves() -> None:
    for name, body in tf.outputs().items():
        assert len(tf.unquote(body.get("description", ""))) > 10, f"output {name}"
    resources, data, local_names = tf.resources(), tf.data_sources(), set(tf.locals_())
    declared = set(tf.variables())
    for kind, ref in re.findall(r"(?<![\w.])(aws_[a-z0-9_]+)\.([a-z0-9_]+)", ALL):
        assert f"{kind}.{ref}" in resources, f"{kind}.{ref} is no resource"
    for kind, ref in re.findall(r"\bdata\.(aws_[a-z0-9_]+)\.([a-z0-9_]+)", ALL):
        assert f"{kind}.{ref}" in data, f"data.{kind}.{ref} is no data source"
    for ref in re.findall(r"\blocal\.(\w+)", ALL):
        assert ref in local_names, f"local.{ref} is not defined"
    for ref in re.findall(r"\bvar\.(\w+)", ALL):
        assert ref in declared, f"var.{ref} is not declared"


def test_the_example_tfvars_sets_declared_variables() -> None:
    with (tf.TERRAFORM / "terraform.tfvars.example").open(encoding="utf-8") as handle:
        example = hcl2.load(handle)
    assert set(example) - {"__comments__"} <= set(tf.variables())


def test_no_secret_is_written_into_the_configuration_or_its_state() -> None:
    assigned = re.findall(
        r"^\s*(\w*(?:password|secret|token|access_key|private_key)\w*)\s*=\s*(.+)$",
        ALL, re.MULTILINE | re.IGNORECASE,
    )  # fmt: skip
    assert [(k, v) for k, v in assigned if k != "manage_master_user_password"] == []
    assert not re.search(r"AKIA[0-9A-Z]{16}", ALL), "an AWS access key id"
    assert "aws_secretsmanager_secret_version" not in ALL, "a secret value would be in state"
    assert "random_password" not in ALL, "a generated password lives in the state"
    database = resource("aws_db_instance", "this")
    assert database["manage_master_user_password"] is True, "RDS keeps the password"
    assert "password" not in database
    assert "auth_token" not in resource("aws_elasticache_replication_group", "this")


def test_the_kubernetes_cluster_has_cpu_and_gpu_node_groups() -> None:
    cpu = resource("aws_eks_node_group", "cpu")
    gpu = resource("aws_eks_node_group", "gpu")
    scaling = gpu["scaling_config"]
    assert isinstance(scaling, list)
    assert scaling[0]["min_size"] == 0, "the GPU group scales from zero"
    assert scaling[0]["desired_size"] == 0
    assert "NVIDIA" in str(gpu["ami_type"])
    assert "NVIDIA" not in str(cpu["ami_type"])
    label, taint = tf.gpu_node_label(), tf.gpu_node_taint()
    tags = tf.unquote(tf.locals_()["gpu_asg_tags"])
    assert isinstance(tags, dict)
    template = "k8s.io/cluster-autoscaler/node-template"
    for key, value in label.items():
        assert tags[f"{template}/label/{key}"] == value
    effect = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute"}[taint["effect"]]
    assert tags[f"{template}/taint/{taint['key']}"] == f"{taint['value']}:{effect}"
    assert f"{template}/resources/nvidia.com/gpu" in tags, "the autoscaler must know the GPU"


def test_managed_services_are_private_encrypted_and_durable() -> None:
    database = resource("aws_db_instance", "this")
    assert database["publicly_accessible"] is False
    assert database["storage_encrypted"] is True
    assert database["skip_final_snapshot"] is False
    redis = resource("aws_elasticache_replication_group", "this")
    assert redis["transit_encryption_enabled"] is True
    assert redis["at_rest_encryption_enabled"] is True
    parameters = resource("aws_elasticache_parameter_group", "this")["parameter"]
    assert {"name": "maxmemory-policy", "value": "noeviction"} in parameters  # type: ignore[operator]
    block = resource("aws_s3_bucket_public_access_block", "audio")
    assert all(
        block[k] is True
        for k in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
    )


def test_the_pods_role_is_for_the_voxflow_service_account_only() -> None:
    text = SOURCES["iam.tf"]
    assert (
        "system:serviceaccount:${var.kubernetes_namespace}:${var.kubernetes_service_account}"
        in text
    )
    assert '"s3:*"' not in text.split("audio_access", 1)[1], "least privilege on the bucket"


def test_a_repository_for_every_image() -> None:
    images = tf.unquote(tf.locals_()["images"])
    assert {f"voxflow/{name}" for name in images} == set(IMAGES)


def test_the_overlay_file_is_terraform_output() -> None:
    assert "kustomize_env" in tf.outputs()
    assert set(tf.terraform_env()) == tf.kustomize_env_keys()


def plugin_dir() -> Path | None:
    """A local mirror holding the hashicorp/aws provider, if there is one."""
    for candidate in PLUGIN_DIRS:
        if candidate and (Path(candidate) / "registry.terraform.io/hashicorp/aws").is_dir():
            return Path(candidate)
    return None


def test_terraform_validates_with_the_aws_provider(tmp_path: Path) -> None:
    terraform, plugins = shutil.which("terraform"), plugin_dir()
    if terraform is None or plugins is None:
        pytest.skip("terraform and a local copy of the AWS provider (TF_PLUGIN_DIR) are needed")
    for path in tf.TERRAFORM.glob("*.tf"):
        shutil.copy(path, tmp_path / path.name)
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([terraform, *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip

    init = run("init", "-backend=false", f"-plugin-dir={plugins}", "-input=false", "-no-color")
    assert init.returncode == 0, init.stdout + init.stderr
    validate = run("validate", "-json", "-no-color")
    report = json.loads(validate.stdout)
    assert report["valid"], json.dumps(report["diagnostics"], indent=1)
    assert [d for d in report["diagnostics"] if d["severity"] == "warning"] == []
    fmt = run("fmt", "-check", "-diff", "-no-color", str(tf.TERRAFORM))
    assert fmt.returncode == 0, fmt.stdout
