"""Storage keys and the storage contract, run on every backend (local disk, S3 on moto).

Tests taking `backend` or `storage` run once per backend; the local-only ones at the end
check what only a directory has (empty folders, temporary files, symlinks).
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path, PosixPath
from types import TracebackType
from typing import Any, BinaryIO

import pytest

from tests.shared.conftest import Backend, local_backend
from tests.support.s3server import MIB
from voxflow.storage import Storage, StorageConfigError, source_key
from voxflow.storage.local import LocalStorage

JOB = uuid.UUID("12345678-1234-5678-1234-567812345678")
KEY = source_key("acme", JOB)


def write(path: Path, data: bytes) -> Path:
    """Write `data` to `path` and return it."""
    path.write_bytes(data)
    return path


def noise(size: int, seed: int = 0) -> bytes:
    """Reproducible bytes that no part boundary can hide (unlike repeated ones)."""
    return random.Random(seed).randbytes(size)


def stored(storage: Storage, key: str) -> bytes:
    """The bytes stored under `key`."""
    with storage.local_copy(key) as path:
        return path.read_bytes()


def test_source_key_format() -> None:
    assert source_key("acme-Co_1", JOB) == f"acme-Co_1/{JOB}/source"
    assert source_key("x" * 64, JOB).startswith("x" * 64 + "/")


@pytest.mark.parametrize(
    "tenant", ["a/b", "..", ".", "", "x" * 65, "a b", "a\\b", "a\0b", "caf\u00e9", "a\n"]
)
def test_source_key_rejects_unsafe_tenants(tenant: str) -> None:
    with pytest.raises(ValueError, match="not a valid key component"):
        source_key(tenant, JOB)


def test_round_trip(backend: Backend, tmp_path: Path) -> None:
    storage = backend.storage
    storage.put_file(KEY, write(tmp_path / "in.wav", b"RIFF audio"))
    assert storage.exists(KEY)
    assert stored(storage, KEY) == b"RIFF audio"
    assert list(storage.iter_keys()) == [KEY]
    assert list(storage.iter_keys("acme/")) == [KEY]
    assert list(storage.iter_keys("other/")) == []
    storage.put_file(KEY, write(tmp_path / "in.wav", b"RIFF newer"))  # overwrite
    assert stored(storage, KEY) == b"RIFF newer"
    storage.delete(KEY)
    assert not storage.exists(KEY)
    assert list(storage.iter_keys()) == []
    storage.delete(KEY)  # deleting a missing object is not an error
    assert backend.leftovers() == []


def test_large_file_round_trip(backend: Backend, tmp_path: Path) -> None:
    data = noise(12 * MIB + 123)  # three parts on S3 (5 MiB parts), one odd-sized
    backend.storage.put_file(KEY, write(tmp_path / "big.wav", data))
    assert stored(backend.storage, KEY) == data
    assert backend.leftovers() == []


def test_keys_are_listed_in_key_order_by_prefix(storage: Storage, tmp_path: Path) -> None:
    source = write(tmp_path / "in.wav", b"x")
    keys = ["acme/b/source", "acme-co/a/source", "zed/x/source", "acme/a/source"]
    for key in keys:
        storage.put_file(key, source)
    assert list(storage.iter_keys()) == sorted(keys)  # as strings: "acme-co/" < "acme/"
    assert list(storage.iter_keys("acme/")) == ["acme/a/source", "acme/b/source"]
    assert list(storage.iter_keys("acme")) == sorted(keys)[:3]
    assert list(storage.iter_keys("zed/x/source")) == ["zed/x/source"]


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


def _put(storage: Storage, key: str, source: Path) -> None:
    storage.put_file(key, source)


def _write(storage: Storage, key: str, _source: Path) -> None:
    with storage.open_writer(key) as out:
        out.write(b"data")


def _exists(storage: Storage, key: str, _source: Path) -> None:
    storage.exists(key)


def _copy(storage: Storage, key: str, _source: Path) -> None:
    with storage.local_copy(key):
        pass


def _delete(storage: Storage, key: str, _source: Path) -> None:
    storage.delete(key)


def _presign(storage: Storage, key: str, _source: Path) -> None:
    storage.presigned_url(key, 60)


@pytest.mark.parametrize("operation", [_put, _write, _exists, _copy, _delete, _presign])
@pytest.mark.parametrize("key", BAD_KEYS)
def test_unsafe_keys_are_refused(
    storage: Storage,
    tmp_path: Path,
    key: str,
    operation: Callable[[Storage, str, Path], None],
) -> None:
    source = write(tmp_path / "in.wav", b"data")
    with pytest.raises(ValueError, match="invalid storage key"):
        operation(storage, key, source)
    assert not (tmp_path / "escape").exists()
    assert list(storage.iter_keys()) == []


def test_local_copy_of_a_missing_key(storage: Storage) -> None:
    with pytest.raises(FileNotFoundError), storage.local_copy(KEY):
        pass


def test_failed_put_keeps_the_old_object(backend: Backend, tmp_path: Path) -> None:
    storage = backend.storage
    storage.put_file(KEY, write(tmp_path / "old.wav", b"old bytes"))
    with pytest.raises(IsADirectoryError):
        storage.put_file(KEY, tmp_path)
    with pytest.raises(FileNotFoundError):
        storage.put_file(KEY, tmp_path / "vanished.wav")
    assert stored(storage, KEY) == b"old bytes"
    assert list(storage.iter_keys()) == [KEY]
    assert backend.leftovers() == []


@pytest.mark.parametrize("size", [0, 10, 5 * MIB, 12 * MIB + 7])
def test_streamed_write_round_trip(backend: Backend, size: int) -> None:
    data = noise(size)
    sizes = [1, 1000, 65_536, 3 * MIB]  # pieces that straddle every part boundary
    with backend.storage.open_writer(KEY) as out:
        offset, turn = 0, 0
        while offset < size:
            piece = data[offset : offset + sizes[turn % len(sizes)]]
            assert out.write(piece) == len(piece)
            offset, turn = offset + len(piece), turn + 1
    assert stored(backend.storage, KEY) == data
    assert list(backend.storage.iter_keys()) == [KEY]
    assert backend.leftovers() == []


class _BreaksMidway:
    """A readable file that fails once `fail_after` bytes went out, like a dropped upload."""

    def __init__(self, inner: BinaryIO, fail_after: int) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.delivered = 0

    def read(self, size: int = -1) -> bytes:
        if self.delivered >= self.fail_after:
            raise OSError("connection reset while reading the upload")
        data = self.inner.read(size)
        self.delivered += len(data)
        return data

    def __enter__(self) -> _BreaksMidway:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.inner.close()


def _stream_breaking(storage: Storage, source: Path, fail_after: int) -> None:
    with (
        pytest.raises(OSError, match="connection reset"),
        storage.open_writer(KEY) as out,
        _BreaksMidway(source.open("rb"), fail_after) as src,
    ):
        shutil.copyfileobj(src, out, MIB)


def test_streamed_write_failing_midway_keeps_the_old_object(
    backend: Backend, tmp_path: Path
) -> None:
    storage = backend.storage
    storage.put_file(KEY, write(tmp_path / "old.wav", b"old bytes"))
    big = write(tmp_path / "big.wav", noise(12 * MIB))
    _stream_breaking(storage, big, 7 * MIB)  # on S3: after one part was sent
    assert stored(storage, KEY) == b"old bytes"
    assert list(storage.iter_keys()) == [KEY]
    assert backend.leftovers() == []


@pytest.mark.parametrize("fail_after", [MIB, 7 * MIB])
def test_failed_first_write_leaves_no_object(
    backend: Backend, tmp_path: Path, fail_after: int
) -> None:
    _stream_breaking(backend.storage, write(tmp_path / "big.wav", noise(12 * MIB)), fail_after)
    assert not backend.storage.exists(KEY)
    assert list(backend.storage.iter_keys()) == []
    assert backend.leftovers() == []


def test_storage_reports_ready(storage: Storage) -> None:
    storage.check()


# Local disk only.


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    """Local storage rooted in a fresh directory."""
    storage = local_backend(tmp_path).storage
    assert isinstance(storage, LocalStorage)
    return storage


def leftovers(root: Path) -> list[Path]:
    """Temporary upload files left anywhere under `root`."""
    return list(root.rglob(".upload-*"))


def test_delete_removes_only_empty_job_folders(local: LocalStorage, tmp_path: Path) -> None:
    other = uuid.uuid4()
    local.put_file(source_key("acme", JOB), write(tmp_path / "a", b"a"))
    local.put_file(source_key("acme", other), write(tmp_path / "b", b"b"))
    local.delete(source_key("acme", JOB))
    assert not (local.root / "acme" / str(JOB)).exists()
    assert (local.root / "acme" / str(other) / "source").read_bytes() == b"b"
    local.delete(source_key("acme", other))
    assert list(local.root.iterdir()) == []  # tenant folder gone too, root kept
    assert local.root.is_dir()


class _BrokenSource(PosixPath):
    """A path whose bytes stop arriving after the first chunk of the copy."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        return _BreaksMidway(Path(self).open("rb"), fail_after=1)


def test_put_file_is_all_or_nothing(local: LocalStorage, tmp_path: Path) -> None:
    local.put_file(KEY, write(tmp_path / "old.wav", b"old bytes"))
    big = write(tmp_path / "big.wav", b"x" * (3 * 1024 * 1024))
    with pytest.raises(OSError, match="connection reset"):
        local.put_file(KEY, _BrokenSource(big))
    assert stored(local, KEY) == b"old bytes"
    assert leftovers(local.root) == []
    assert list(local.iter_keys()) == [KEY]


def test_failed_first_put_leaves_no_object(local: LocalStorage, tmp_path: Path) -> None:
    big = write(tmp_path / "big.wav", b"x" * (3 * 1024 * 1024))
    with pytest.raises(OSError, match="connection reset"):
        local.put_file(KEY, _BrokenSource(big))
    assert not local.exists(KEY)
    assert leftovers(local.root) == []
    assert list(local.iter_keys()) == []


def test_iter_keys_hides_temporary_upload_files(local: LocalStorage, tmp_path: Path) -> None:
    local.put_file(KEY, write(tmp_path / "in.wav", b"data"))
    (local.root / "acme" / str(JOB) / ".upload-abc123").write_bytes(b"partial")
    assert list(local.iter_keys()) == [KEY]


def test_a_symlink_cannot_lead_out_of_the_root(local: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (local.root / "acme").symlink_to(outside)
    with pytest.raises(ValueError, match="invalid storage key"):
        local.put_file(KEY, write(tmp_path / "in.wav", b"data"))
    assert list(outside.iterdir()) == []


def test_local_has_no_presigned_urls_and_checks_its_root(local: LocalStorage) -> None:
    assert local.presigned_url(KEY, 60) is None
    shutil.rmtree(local.root)
    with pytest.raises(StorageConfigError, match="not a writable directory"):
        local.check()
