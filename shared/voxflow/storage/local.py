"""Local-disk storage: one file per key under a root directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class LocalStorage:
    """Stores objects as files under `root`, written atomically by rename."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # Keys are server-generated, but refuse anything that could leave the root anyway.
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
            raise ValueError(f"invalid storage key {key!r}")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"invalid storage key {key!r}")
        return path

    def put_file(self, key: str, path: Path) -> None:
        """Copy `path` to `key` through a temporary file and an atomic rename."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
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
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith(".upload-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key
