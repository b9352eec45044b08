"""Build the configured storage backend."""

from __future__ import annotations

from voxflow.settings import StorageSettings
from voxflow.storage.base import Storage
from voxflow.storage.local import LocalStorage


def make_storage(settings: StorageSettings) -> Storage:
    """Return the storage backend named by the settings."""
    if settings.storage_backend == "local":
        return LocalStorage(settings.resolved_storage_root())
    raise ValueError(f"unknown storage backend {settings.storage_backend!r} (known: local)")
