"""Object storage for uploaded audio: a small protocol and its backends."""

from voxflow.storage.base import (
    ObjectWriter,
    Storage,
    StorageConfigError,
    StorageError,
    StorageUnavailableError,
    source_key,
)
from voxflow.storage.factory import make_storage

__all__ = [
    "ObjectWriter",
    "Storage",
    "StorageConfigError",
    "StorageError",
    "StorageUnavailableError",
    "make_storage",
    "source_key",
]
