"""A real S3-protocol server on loopback for the suite: moto in server mode.

boto3 talks HTTP to it exactly as it would to AWS or MinIO (signing, multipart, presigned
URLs); nothing in the client is patched. Child processes (e2e workers) reach it too.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import boto3
from moto.server import ThreadedMotoServer

from voxflow.settings import StorageSettings

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

REGION = "us-east-1"
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"  # moto accepts any credentials
MIB = 1024 * 1024


@dataclass
class S3Server:
    """Where the server listens, and helpers to configure clients and storages for it."""

    endpoint_url: str

    @cached_property
    def _client(self) -> S3Client:
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        )  # fmt: skip

    def client(self) -> S3Client:
        """A plain boto3 client for assertions from outside the storage under test."""
        return self._client

    def new_bucket(self) -> str:
        """Create a bucket no other test uses."""
        name = f"vf-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, bucket: str, **extra: str) -> dict[str, str]:
        """VOXFLOW_* variables selecting the S3 backend on this server."""
        env = {
            "VOXFLOW_STORAGE_BACKEND": "s3",
            "VOXFLOW_S3_BUCKET": bucket,
            "VOXFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "VOXFLOW_S3_REGION": REGION,
            "VOXFLOW_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "VOXFLOW_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "VOXFLOW_S3_ADDRESSING_STYLE": "path",
        }
        return {**env, **{f"VOXFLOW_S3_{k.upper()}": v for k, v in extra.items()}}

    def settings(self, bucket: str, **extra: object) -> StorageSettings:
        """Storage settings for this server, as the services would read them."""
        values = {k.removeprefix("VOXFLOW_").lower(): v for k, v in self.env(bucket).items()}
        return StorageSettings.model_validate({**values, **extra})


@contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """Start moto's S3 server on a free loopback port; stop it afterwards."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()
