"""Local-disk storage: one file per key under a root directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from voxflow.storage.base import ObjectWriter, StorageConfigError, check_key

_COPY_CHUNK = 1024 * 1024


class LocalStorage:
    """Stores objects as files under `root`, written atomically by rename."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        # A symlink inside the root could still lead out of it.
        if not path.is_relative_to(self.root):
            raise ValueError(f"invalid storage key {key!r}")
        return path

    def put_file(self, key: str, path: Path) -> None:
        """Copy `path` to `key` through a temporary file and an atomic rename."""
        with self.open_writer(key) as out, path.open("rb") as src:
            shutil.copyfileobj(src, out, _COPY_CHUNK)

    @contextmanager
    def open_writer(self, key: str) -> Iterator[ObjectWriter]:
        """Yield a temporary file next to the target; rename it into place on a clean exit."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())  # the bytes are on disk before the name points at them
            Path(tmp_name).replace(target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """Yield the stored file itself (no copy is needed on local disk)."""
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        yield path

    def exists(self, key: str) -> bool:
        """Tell whether `key` holds an object."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove an object and the job folders it leaves empty."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """List stored keys under a prefix (temporary upload files excluded)."""
        keys = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not path.name.startswith(".upload-")
        )
        # Sorted as strings, like S3 lists keys (Path order differs: "a-b/c" < "a/b" as text).
        yield from sorted(key for key in keys if key.startswith(prefix))

    def presigned_url(self, key: str, expires_seconds: int) -> str | None:  # noqa: ARG002
        """Local files have no URL: callers serve the bytes themselves."""
        check_key(key)
        return None

    def check(self) -> None:
        """Raise if the root is not a writable directory."""
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageConfigError(f"storage root {self.root} is not a writable directory")
