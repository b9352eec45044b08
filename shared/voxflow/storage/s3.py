"""S3-compatible storage (AWS S3, MinIO, Ceph, ...) through boto3, for processes sharing no disk."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from voxflow.settings import StorageSettings
from voxflow.storage.base import ObjectWriter, StorageConfigError, check_key
from voxflow.storage.s3_errors import is_not_found, translated
from voxflow.storage.s3_writer import MultipartWriter

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the SigV4 limit

_session_lock = threading.Lock()
_session: boto3.session.Session | None = None


def _new_client(**kwargs: Any) -> S3Client:
    """An S3 client from one boto3 session per process.

    A fresh session parses the S3 service model again (about 0.1 s of CPU, paid on every
    sweeper pass); a shared one makes clients in milliseconds. Sessions are not thread-safe,
    hence the lock.
    """
    global _session  # noqa: PLW0603 (one session per process)
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", **kwargs)


def normalize_prefix(prefix: str) -> str:
    """`voxflow`, `voxflow/` and `/voxflow/` all mean the folder `voxflow/`; empty means none."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    check_key(stripped)  # the prefix becomes part of every key, so it obeys the same rules
    return stripped + "/"


class S3Storage:
    """Stores objects in one bucket under an optional key prefix."""

    list_page_size = 1000  # keys per ListObjectsV2 request (S3's maximum)

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        prefix: str = "",
        multipart_threshold_bytes: int = 16 * 1024 * 1024,
        multipart_chunk_bytes: int = 8 * 1024 * 1024,
        extra_args: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.part_bytes = multipart_chunk_bytes
        self.extra_args = dict(extra_args or {})
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold_bytes,
            multipart_chunksize=multipart_chunk_bytes,
            max_concurrency=4,
            # The classic transfer manager behaves the same with or without awscrt installed.
            preferred_transfer_client="classic",
        )
        self.where = f"s3://{bucket}/{self.prefix} at {client.meta.endpoint_url}"

    @classmethod
    def from_settings(cls, settings: StorageSettings) -> S3Storage:
        """Build the client and the storage from the S3 settings (no network call)."""
        if not settings.s3_bucket:
            raise StorageConfigError(
                "VOXFLOW_S3_BUCKET must be set when VOXFLOW_STORAGE_BACKEND=s3"
            )
        key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
        if (key_id is None) != (secret is None):
            raise StorageConfigError(
                "set both VOXFLOW_S3_ACCESS_KEY_ID and VOXFLOW_S3_SECRET_ACCESS_KEY, or neither "
                "(to use boto3's default credential chain)"
            )
        extra: dict[str, str] = {}
        if settings.s3_server_side_encryption:
            extra["ServerSideEncryption"] = settings.s3_server_side_encryption
        if settings.s3_sse_kms_key_id:
            if not (settings.s3_server_side_encryption or "").startswith("aws:kms"):
                raise StorageConfigError(
                    "VOXFLOW_S3_SSE_KMS_KEY_ID needs VOXFLOW_S3_SERVER_SIDE_ENCRYPTION=aws:kms"
                )
            extra["SSEKMSKeyId"] = settings.s3_sse_kms_key_id
        config = Config(
            signature_version="s3v4",  # presigned URLs for KMS-encrypted objects need SigV4
            s3={"addressing_style": settings.s3_addressing_style},
            # Fail fast on an unreachable endpoint (readiness probes wait for this), retry
            # throttling and 5xx answers with backoff.
            connect_timeout=5,
            read_timeout=60,
            retries={"mode": "standard", "max_attempts": 4},
            max_pool_connections=16,
        )
        client = _new_client(
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=key_id.get_secret_value() if key_id else None,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=config,
        )
        return cls(
            client,
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            multipart_threshold_bytes=settings.s3_multipart_threshold_bytes,
            multipart_chunk_bytes=settings.s3_multipart_chunk_bytes,
            extra_args=extra,
        )

    def object_name(self, key: str) -> str:
        """The S3 key of a storage key (the prefix plus the key)."""
        return self.prefix + check_key(key)

    def put_file(self, key: str, path: Path) -> None:
        """Upload a file; over the threshold in parts, in parallel, read from disk as sent.

        S3 makes an object visible only when its upload completes; on a failure the transfer
        manager aborts the multipart upload, so neither an object nor parts are left.
        """
        name = self.object_name(key)
        with path.open("rb"):
            pass  # the local backend's errors for a missing file or a directory (boto3 says less)
        with translated(self.where):
            try:
                self.client.upload_file(
                    str(path), self.bucket, name, ExtraArgs=self.extra_args, Config=self.transfer
                )
            except S3UploadFailedError as exc:
                # boto3 wraps the service's error; raise that one, which says what went wrong.
                if isinstance(exc.__context__, ClientError):
                    raise exc.__context__ from exc
                raise

    @contextmanager
    def open_writer(self, key: str) -> Iterator[ObjectWriter]:
        """Yield a writer sending a part whenever one is full; abort everything on an error."""
        writer = MultipartWriter(
            self.client, self.bucket, self.object_name(key), self.part_bytes, self.extra_args
        )
        with translated(self.where):
            try:
                yield writer
                writer.complete()
            except BaseException:
                writer.abort()
                raise

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """Download to a private temporary directory, removed when the block ends."""
        name = self.object_name(key)
        with tempfile.TemporaryDirectory(prefix="voxflow-s3-") as scratch:
            path = Path(scratch) / "source"
            with translated(self.where):
                try:
                    # Ranged GETs in parallel for big objects, written to disk as they
                    # arrive, retried when a stream breaks.
                    self.client.download_file(self.bucket, name, str(path), Config=self.transfer)
                except ClientError as exc:
                    if is_not_found(exc):
                        self.check()  # a missing bucket is a configuration error, not a 404
                        raise FileNotFoundError(key) from exc
                    raise
            yield path

    def exists(self, key: str) -> bool:
        """Tell whether `key` holds an object (one HEAD request)."""
        name = self.object_name(key)
        with translated(self.where):
            try:
                self.client.head_object(Bucket=self.bucket, Key=name)
            except ClientError as exc:
                if is_not_found(exc):
                    self.check()
                    return False
                raise
        return True

    def delete(self, key: str) -> None:
        """Delete an object (S3 answers 204 for a missing key too)."""
        name = self.object_name(key)
        with translated(self.where):
            self.client.delete_object(Bucket=self.bucket, Key=name)

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """List keys under a prefix, page by page, without this storage's own prefix."""
        paginator = self.client.get_paginator("list_objects_v2")
        with translated(self.where):
            pages = paginator.paginate(
                Bucket=self.bucket,
                Prefix=self.prefix + prefix,
                PaginationConfig={"PageSize": self.list_page_size},
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :]

    def presigned_url(self, key: str, expires_seconds: int) -> str:
        """A GET URL valid for `expires_seconds` (signed locally; the object is not checked)."""
        if not 1 <= expires_seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"expires_seconds must be within 1..{MAX_PRESIGN_SECONDS}")
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.object_name(key)}
        with translated(self.where):
            return self.client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_seconds
            )

    def check(self) -> None:
        """One HEAD on the bucket: raise StorageConfigError or StorageUnavailableError."""
        with translated(self.where):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if is_not_found(exc):
                    raise StorageConfigError(f"bucket {self.where} does not exist") from exc
                raise
