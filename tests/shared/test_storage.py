"""Storage keys and local-disk storage: round trips, key safety, atomic writes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path, PosixPath
from types import TracebackType
from typing import Any, BinaryIO

import pytest

from voxflow.storage import source_key
from voxflow.storage.local import LocalStorage

JOB = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    """Local storage rooted in a fresh directory."""
    return LocalStorage(tmp_path / "root")


def write(path: Path, data: bytes) -> Path:
    """Write `data` to `path` and return it."""
    path.write_bytes(data)
    return path


def leftovers(root: Path) -> list[Path]:
    """Temporary upload files left anywhere under `root`."""
    return list(root.rglob(".upload-*"))


def test_source_key_format() -> None:
    assert source_key("acme-Co_1", JOB) == f"acme-Co_1/{JOB}/source"
    assert source_key("x" * 64, JOB).startswith("x" * 64 + "/")


@pytest.mark.parametrize(
    "tenant", ["a/b", "..", ".", "", "x" * 65, "a b", "a\\b", "a\0b", "caf\u00e9", "a\n"]
)
def test_source_key_rejects_unsafe_tenants(tenant: str) -> None:
    with pytest.raises(ValueError, match="not a valid key component"):
        source_key(tenant, JOB)


def test_round_trip(storage: LocalStorage, tmp_path: Path) -> None:
    key = source_key("acme", JOB)
    storage.put_file(key, write(tmp_path / "in.wav", b"RIFF audio"))
    assert storage.exists(key)
    with storage.local_copy(key) as path:
        assert path.read_bytes() == b"RIFF audio"
    assert list(storage.iter_keys()) == [key]
    assert list(storage.iter_keys("acme/")) == [key]
    assert list(storage.iter_keys("other/")) == []
    storage.put_file(key, write(tmp_path / "in.wav", b"RIFF newer"))  # overwrite
    with storage.local_copy(key) as path:
        assert path.read_bytes() == b"RIFF newer"
    storage.delete(key)
    assert not storage.exists(key)
    assert list(storage.iter_keys()) == []
    storage.delete(key)  # deleting a missing object is not an error


def test_delete_removes_only_empty_job_folders(storage: LocalStorage, tmp_path: Path) -> None:
    other = uuid.uuid4()
    storage.put_file(source_key("acme", JOB), write(tmp_path / "a", b"a"))
    storage.put_file(source_key("acme", other), write(tmp_path / "b", b"b"))
    storage.delete(source_key("acme", JOB))
    assert not (storage.root / "acme" / str(JOB)).exists()
    assert (storage.root / "acme" / str(other) / "source").read_bytes() == b"b"
    storage.delete(source_key("acme", other))
    assert list(storage.root.iterdir()) == []  # tenant folder gone too, root kept
    assert storage.root.is_dir()


BAD_KEYS = [
    "",
    "..",
    "../escape",
    "a/../../escape",
    "a/./b",
    "/etc/passwd",
    "a//b",
    "a/b/",
    "a\\b",
    "..\\escape",
    "a\0b",
]


def _put(storage: LocalStorage, key: str, source: Path) -> None:
    storage.put_file(key, source)


def _exists(storage: LocalStorage, key: str, _source: Path) -> None:
    storage.exists(key)


def _copy(storage: LocalStorage, key: str, _source: Path) -> None:
    with storage.local_copy(key):
        pass


def _delete(storage: LocalStorage, key: str, _source: Path) -> None:
    storage.delete(key)


@pytest.mark.parametrize("operation", [_put, _exists, _copy, _delete])
@pytest.mark.parametrize("key", BAD_KEYS)
def test_unsafe_keys_are_refused(
    storage: LocalStorage,
    tmp_path: Path,
    key: str,
    operation: Callable[[LocalStorage, str, Path], None],
) -> None:
    source = write(tmp_path / "in.wav", b"data")
    with pytest.raises(ValueError, match="invalid storage key"):
        operation(storage, key, source)
    assert not (tmp_path / "escape").exists()
    assert list(storage.iter_keys()) == []


def test_local_copy_of_a_missing_key(storage: LocalStorage) -> None:
    with pytest.raises(FileNotFoundError), storage.local_copy(source_key("acme", JOB)):
        pass


class _BreaksMidway:
    """A readable file that fails after its first chunk, like an interrupted upload stream."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise OSError("connection reset while reading the upload")
        return self.inner.read(size)

    def __enter__(self) -> _BreaksMidway:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.inner.close()


class _BrokenSource(PosixPath):
    """A path whose bytes stop arriving halfway through the copy."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        return _BreaksMidway(Path(self).open("rb"))


def test_put_file_is_all_or_nothing(storage: LocalStorage, tmp_path: Path) -> None:
    key = source_key("acme", JOB)
    storage.put_file(key, write(tmp_path / "old.wav", b"old bytes"))
    big = write(tmp_path / "big.wav", b"x" * (3 * 1024 * 1024))

    with pytest.raises(OSError, match="connection reset"):
        storage.put_file(key, _BrokenSource(big))
    with pytest.raises(IsADirectoryError):
        storage.put_file(key, tmp_path)
    with pytest.raises(FileNotFoundError):
        storage.put_file(key, tmp_path / "vanished.wav")

    with storage.local_copy(key) as path:
        assert path.read_bytes() == b"old bytes"
    assert leftovers(storage.root) == []
    assert list(storage.iter_keys()) == [key]


def test_failed_first_put_leaves_no_object(storage: LocalStorage, tmp_path: Path) -> None:
    key = source_key("acme", JOB)
    big = write(tmp_path / "big.wav", b"x" * (3 * 1024 * 1024))
    with pytest.raises(OSError, match="connection reset"):
        storage.put_file(key, _BrokenSource(big))
    assert not storage.exists(key)
    assert leftovers(storage.root) == []
    assert list(storage.iter_keys()) == []


def test_iter_keys_hides_temporary_upload_files(storage: LocalStorage, tmp_path: Path) -> None:
    key = source_key("acme", JOB)
    storage.put_file(key, write(tmp_path / "in.wav", b"data"))
    (storage.root / "acme" / str(JOB) / ".upload-abc123").write_bytes(b"partial")
    assert list(storage.iter_keys()) == [key]
