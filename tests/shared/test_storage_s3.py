"""What only the S3 backend does, against moto's real S3 server: parts, encryption, URLs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ConnectionClosedError

from tests.shared.conftest import PART, Backend, s3_backend
from tests.shared.test_storage import KEY, noise, stored, write
from tests.support.s3server import MIB, S3Server
from voxflow.settings import StorageSettings
from voxflow.storage import StorageConfigError, StorageUnavailableError, make_storage
from voxflow.storage.s3 import MAX_PRESIGN_SECONDS, S3Storage, normalize_prefix


def s3_of(backend: Backend) -> S3Storage:
    """The backend's storage as S3Storage, to reach its client and bucket."""
    assert isinstance(backend.storage, S3Storage)
    return backend.storage


def parts_of(storage: S3Storage, key: str) -> int:
    """How many parts the object was uploaded in (1 for a single PUT)."""
    etag = storage.client.head_object(Bucket=storage.bucket, Key=storage.object_name(key))["ETag"]
    # A multipart object's ETag is "<md5 of the part md5s>-<number of parts>".
    return int(etag.strip('"').partition("-")[2] or 1)


def test_big_files_go_up_in_parts_small_ones_in_one_put(s3: Backend, tmp_path: Path) -> None:
    storage = s3_of(s3)
    storage.put_file(KEY, write(tmp_path / "big.wav", noise(2 * PART + 1)))
    assert parts_of(storage, KEY) == 3
    storage.put_file("acme/small/source", write(tmp_path / "small.wav", noise(PART - 1)))
    assert parts_of(storage, "acme/small/source") == 1
    with storage.open_writer("acme/streamed/source") as out:
        for _ in range(11):
            out.write(noise(MIB))
    assert parts_of(storage, "acme/streamed/source") == 3  # 5 + 5 + 1 MiB
    with storage.open_writer("acme/short/source") as out:
        out.write(b"short")
    assert parts_of(storage, "acme/short/source") == 1


def _break_part(number: int) -> Any:
    """A botocore hook: every attempt to send part `number` dies as a dropped connection would."""

    def hook(request: Any, **_: Any) -> None:
        if f"partNumber={number}&" in request.url + "&":
            raise ConnectionClosedError(endpoint_url=request.url)

    return hook


def test_a_put_failing_mid_upload_leaves_no_object_and_no_parts(
    s3: Backend, tmp_path: Path
) -> None:
    storage = s3_of(s3)
    storage.put_file(KEY, write(tmp_path / "old.wav", b"old bytes"))
    # The fault is injected through botocore's documented event hooks, after signing, so
    # parts 1 and 3 really reach the server and part 2 fails on every retry.
    calls: list[str] = []
    events = storage.client.meta.events
    events.register("before-send.s3.UploadPart", _break_part(2), unique_id="break")
    events.register("after-call.s3", lambda model, **_: calls.append(model.name), "count")
    big = write(tmp_path / "big.wav", noise(3 * PART))
    with pytest.raises(StorageUnavailableError, match="cannot reach"):
        storage.put_file(KEY, big)
    with pytest.raises(StorageUnavailableError):
        storage.put_file("acme/new/source", big)
    events.unregister("before-send.s3.UploadPart", unique_id="break")
    events.unregister("after-call.s3", unique_id="count")
    assert calls.count("CreateMultipartUpload") == calls.count("AbortMultipartUpload") == 2
    assert "CompleteMultipartUpload" not in calls
    assert stored(storage, KEY) == b"old bytes"
    assert not storage.exists("acme/new/source")
    assert list(storage.iter_keys()) == [KEY]
    assert s3.leftovers() == []  # the transfer manager aborted both multipart uploads


def _write_then_fail(storage: S3Storage, data: bytes) -> None:
    with storage.open_writer(KEY) as out:
        out.write(data)
        raise RuntimeError("stop")


def test_a_streamed_upload_is_invisible_until_complete(s3: Backend) -> None:
    storage = s3_of(s3)
    with storage.open_writer(KEY) as out:
        out.write(noise(PART + 1))  # one part sent, one byte buffered
        assert s3.leftovers() == [storage.object_name(KEY)]  # an upload in progress...
        assert not storage.exists(KEY)  # ...that is no object yet
    assert s3.leftovers() == []
    assert storage.exists(KEY)
    with pytest.raises(RuntimeError, match="stop"):
        _write_then_fail(storage, noise(PART + 1, seed=1))
    assert s3.leftovers() == []
    assert stored(storage, KEY) == noise(PART + 1)


@pytest.mark.parametrize("size", [10, 2 * PART + 1])
@pytest.mark.parametrize(
    ("encryption", "kms_key"), [("AES256", None), ("aws:kms", "alias/voxflow-audio")]
)
def test_server_side_encryption_is_asked_for(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, size: int, encryption: str,
    kms_key: str | None,
) -> None:  # fmt: skip
    storage = s3_of(
        s3_backend(s3_server, s3_bucket, s3_server_side_encryption=encryption,
                   s3_sse_kms_key_id=kms_key)
    )  # fmt: skip
    storage.put_file(KEY, write(tmp_path / "in.wav", noise(size)))
    with storage.open_writer("acme/streamed/source") as out:
        out.write(noise(size))
    for key in (KEY, "acme/streamed/source"):
        head = storage.client.head_object(Bucket=storage.bucket, Key=storage.object_name(key))
        assert head["ServerSideEncryption"] == encryption
        assert head.get("SSEKMSKeyId") == kms_key
        assert stored(storage, key) == noise(size)
    plain = s3_of(s3_backend(s3_server, s3_bucket))
    plain.put_file(KEY, write(tmp_path / "in.wav", b"x"))
    head = plain.client.head_object(Bucket=plain.bucket, Key=plain.object_name(KEY))
    assert "ServerSideEncryption" not in head


def test_presigned_url_downloads_with_a_plain_http_client(s3: Backend, tmp_path: Path) -> None:
    storage = s3_of(s3)
    data = noise(100_000)
    storage.put_file(KEY, write(tmp_path / "in.wav", data))
    url = storage.presigned_url(KEY, 60)
    assert "X-Amz-Signature=" in url
    assert "X-Amz-Expires=60" in url
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == data
    missing = httpx.get(storage.presigned_url("acme/none/source", 60))
    assert missing.status_code == 404
    for bad in (0, MAX_PRESIGN_SECONDS + 1):
        with pytest.raises(ValueError, match="expires_seconds"):
            storage.presigned_url(KEY, bad)


def test_local_copy_is_a_temporary_file_removed_afterwards(s3: Backend, tmp_path: Path) -> None:
    storage = s3_of(s3)
    data = noise(2 * PART + 5)
    storage.put_file(KEY, write(tmp_path / "in.wav", data))
    with storage.local_copy(KEY) as path:
        assert path.read_bytes() == data
        assert path.stat().st_mode & 0o077 == 0 or path.parent.stat().st_mode & 0o077 == 0
    assert not path.exists()
    assert not path.parent.exists()


def test_prefixes_keep_deployments_apart(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    one = make_storage(s3_server.settings(bucket, s3_prefix="team"))
    other = make_storage(s3_server.settings(bucket, s3_prefix="/team-b/"))
    bare = make_storage(s3_server.settings(bucket))
    source = write(tmp_path / "in.wav", b"one")
    one.put_file(KEY, source)
    other.put_file(KEY, write(tmp_path / "in2.wav", b"other"))
    assert list(one.iter_keys()) == [KEY]
    assert list(other.iter_keys()) == [KEY]
    assert list(bare.iter_keys()) == [f"team-b/{KEY}", f"team/{KEY}"]
    one.delete(KEY)
    one.delete(KEY)  # again: still no error
    assert not one.exists(KEY)
    assert stored(other, KEY) == b"other"
    assert list(bare.iter_keys()) == [f"team-b/{KEY}"]


def test_listing_follows_pages(s3: Backend, tmp_path: Path) -> None:
    storage = s3_of(s3)
    storage.list_page_size = 2  # five keys: three requests
    source = write(tmp_path / "in.wav", b"x")
    keys = [f"acme/{n}/source" for n in range(5)]
    for key in keys:
        storage.put_file(key, source)
    requests: list[str] = []
    storage.client.meta.events.register(
        "before-send.s3.ListObjectsV2", lambda request, **_: requests.append(request.url), "n"
    )
    assert list(storage.iter_keys()) == keys
    storage.client.meta.events.unregister("before-send.s3.ListObjectsV2", unique_id="n")
    assert len(requests) == 3


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("", ""), ("/", ""), ("a", "a/"), ("a/", "a/"), ("/a/b/", "a/b/"), ("a-b_c", "a-b_c/")],
)
def test_prefix_forms(raw: str, normal: str) -> None:
    assert normalize_prefix(raw) == normal


@pytest.mark.parametrize("raw", ["a/../b", "a//b", "a\\b", ".."])
def test_unsafe_prefixes_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        normalize_prefix(raw)


def test_a_missing_bucket_is_a_clear_configuration_error(
    s3_server: S3Server, tmp_path: Path
) -> None:
    storage = make_storage(s3_server.settings("vf-no-such-bucket"))
    source = write(tmp_path / "in.wav", b"data")
    with pytest.raises(StorageConfigError, match=r"vf-no-such-bucket.*does not exist"):
        storage.check()
    # Not "the object is missing": a worker must not fail jobs as if their audio was gone.
    for operation in (
        lambda: storage.exists(KEY),
        lambda: storage.local_copy(KEY).__enter__(),
        lambda: storage.put_file(KEY, source),
        lambda: storage.delete(KEY),
        lambda: list(storage.iter_keys()),
    ):
        with pytest.raises(StorageConfigError, match="does not exist"):
            operation()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"storage_backend": "s3"}, "VOXFLOW_S3_BUCKET must be set"),
        ({"storage_backend": "gcs"}, r"unknown storage backend 'gcs'.*known: local, s3"),
        (
            {"storage_backend": "s3", "s3_bucket": "b", "s3_access_key_id": "id"},
            "set both VOXFLOW_S3_ACCESS_KEY_ID and VOXFLOW_S3_SECRET_ACCESS_KEY",
        ),
        (
            {"storage_backend": "s3", "s3_bucket": "b", "s3_sse_kms_key_id": "k"},
            "needs VOXFLOW_S3_SERVER_SIDE_ENCRYPTION=aws:kms",
        ),
    ],
)
def test_configuration_errors_name_the_setting(values: dict[str, str], message: str) -> None:
    with pytest.raises(StorageConfigError, match=message):
        make_storage(StorageSettings.model_validate(values))


def test_an_unreachable_endpoint_is_unavailable_not_misconfigured(tmp_path: Path) -> None:
    settings = StorageSettings.model_validate(
        {"storage_backend": "s3", "s3_bucket": "bucket", "s3_region": "us-east-1",
         "s3_endpoint_url": "http://127.0.0.1:1", "s3_access_key_id": "a",
         "s3_secret_access_key": "b"}
    )  # fmt: skip
    storage = make_storage(settings)
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match="cannot reach"):
        storage.check()
    with pytest.raises(StorageUnavailableError):
        storage.put_file(KEY, write(tmp_path / "in.wav", b"data"))
    assert time.monotonic() - started < 30  # retried with backoff, not for minutes
