"""Storage fixtures: every backend behind the same interface, and a real S3 server for S3."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.s3server import MIB, S3Server, running_s3_server
from voxflow.storage import Storage, make_storage
from voxflow.storage.local import LocalStorage
from voxflow.storage.s3 import S3Storage

# S3's smallest part (moto enforces it too), so that a few MiB already make several parts.
PART = 5 * MIB


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on loopback, for the whole session (each test takes its own bucket)."""
    with running_s3_server() as server:
        yield server


@dataclass
class Backend:
    """A storage under test and a way to see what it left behind outside its keys."""

    name: str
    storage: Storage
    leftovers: Callable[[], list[str]]


def local_backend(tmp_path: Path) -> Backend:
    """Local storage in a fresh directory; leftovers are temporary upload files."""
    storage = LocalStorage(tmp_path / "root")
    return Backend(
        "local",
        storage,
        lambda: [p.name for p in storage.root.rglob(".upload-*")],
    )


def s3_backend(server: S3Server, bucket: str, **settings: object) -> Backend:
    """S3 storage under a fresh prefix of `bucket`, with 5 MiB parts.

    Leftovers are unfinished multipart uploads. A prefix per test rather than a bucket per
    test: creating a bucket takes moto a quarter of a second, and every test then runs with
    a key prefix, as a shared bucket is deployed.
    """
    values = {
        "s3_prefix": f"t-{uuid.uuid4().hex[:12]}",
        "s3_multipart_threshold_bytes": PART,
        "s3_multipart_chunk_bytes": PART,
    }
    storage = make_storage(server.settings(bucket, **{**values, **settings}))
    assert isinstance(storage, S3Storage)

    def unfinished() -> list[str]:
        listed = server.client().list_multipart_uploads(Bucket=bucket, Prefix=storage.prefix)
        return [upload["Key"] for upload in listed.get("Uploads", [])]

    return Backend("s3", storage, unfinished)


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    """The bucket the S3 storage tests share (each under its own prefix)."""
    return s3_server.new_bucket()


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each storage backend in turn, empty."""
    if request.param == "local":
        return local_backend(tmp_path)
    server: S3Server = request.getfixturevalue("s3_server")
    return s3_backend(server, request.getfixturevalue("s3_bucket"))


@pytest.fixture
def storage(backend: Backend) -> Storage:
    """The storage of `backend`."""
    return backend.storage


@pytest.fixture
def s3(s3_server: S3Server, s3_bucket: str) -> Backend:
    """S3 storage alone, under a fresh prefix."""
    return s3_backend(s3_server, s3_bucket)
