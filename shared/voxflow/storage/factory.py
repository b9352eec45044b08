"""Build the configured storage backend."""

from __future__ import annotations

from voxflow.settings import StorageSettings
from voxflow.storage.base import Storage, StorageConfigError
from voxflow.storage.local import LocalStorage

BACKENDS = ("local", "s3")


def make_storage(settings: StorageSettings) -> Storage:
    """Return the storage backend named by the settings (no network call: see `check`)."""
    if settings.storage_backend == "local":
        return LocalStorage(settings.resolved_storage_root())
    if settings.storage_backend == "s3":
        from voxflow.storage.s3 import S3Storage  # boto3 loads only where S3 is used

        return S3Storage.from_settings(settings)
    raise StorageConfigError(
        f"unknown storage backend {settings.storage_backend!r} "
        f"(VOXFLOW_STORAGE_BACKEND; known: {', '.join(BACKENDS)})"
    )
