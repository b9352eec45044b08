"""Object storage for uploaded audio: a small protocol and its backends."""

from voxflow.storage.base import Storage, source_key
from voxflow.storage.factory import make_storage

__all__ = ["Storage", "make_storage", "source_key"]
