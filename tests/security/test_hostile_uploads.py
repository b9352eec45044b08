"""Hostile uploads to `POST /v1/jobs`: a coded 4xx each, and nothing left behind.

Every request here is refused with a 4xx whose body carries a machine-readable code and a
sentence, and leaves no job row, no stored object and no spool file. Hostile file *names* on
valid audio are accepted instead: the name is kept as display metadata only, so those cases
check that it never reaches a storage key or a path.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ingest_api.app import create_app
from ingest_api.settings import IngestSettings
from tests.security.media import (
    MULTIPART,
    Media,
    file_form,
    flac_declaring,
    form,
    make_media,
    part,
    wav,
)
from voxflow.jobs.models import Job
from voxflow.storage.local import LocalStorage

MAX_BYTES = 2_000_000  # above every body here except the over-size one, which has its own app
MAX_SECONDS = 60.0
SMALL_CAP = 4096


@pytest.fixture(scope="module")
def media() -> Media:
    """The voice note in every container the corpus cuts up."""
    return make_media()


@pytest.fixture(scope="module")
def spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API's spool directory, watched for leftovers."""
    return tmp_path_factory.mktemp("hostile-spool")


@pytest.fixture(scope="module")
def client(spool: Path) -> Iterator[TestClient]:
    """The ingestion API with a one-minute recording limit."""
    settings = IngestSettings(
        spool_dir=spool, max_upload_bytes=MAX_BYTES, max_audio_seconds=MAX_SECONDS
    )
    with TestClient(create_app(settings)) as running:
        yield running


@dataclass(frozen=True)
class Hostile:
    """A request body (built from the media), its content type, and the refusal it must get."""

    body: Callable[[Media], bytes]
    status: int
    code: str
    content_type: str = MULTIPART
    headers: tuple[tuple[str, str], ...] = ()


def _file(
    make: Callable[[Media], bytes], name: bytes = b"recording.wav"
) -> Callable[[Media], bytes]:
    """A body whose only part is the file `make` builds."""
    return lambda m: file_form(make(m), name)


def _half(data: bytes) -> bytes:
    """The first half of a file: cut in the middle."""
    return data[: len(data) // 2]


def _with_options(options: bytes) -> Callable[[Media], bytes]:
    """A valid recording with this raw `options` field."""
    return lambda m: form(part(b"file", m.ogg, filename=b"note.ogg"), part(b"options", options))


def _options(value: Any) -> Callable[[Media], bytes]:
    """A valid recording with `value` as JSON options."""
    return _with_options(json.dumps(value).encode())


def _zip_of_wav(m: Media) -> bytes:
    """A ZIP archive holding a WAV (named .wav itself)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("inner.wav", m.wav)
    return archive.getvalue()


ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 2000
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02" + b"\x00" * 600
PDF = b"%PDF-1.7\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n" * 20

HOSTILE: dict[str, Hostile] = {
    # Not audio at all, whatever the name says.
    "text-as-wav": Hostile(_file(lambda m: b"just some notes, not audio\n" * 200), 415,
                           "unsupported_media"),
    "png-as-mp3": Hostile(_file(lambda m: PNG, b"song.mp3"), 415, "no_audio_stream"),
    "elf-as-wav": Hostile(_file(lambda m: ELF), 415, "unsupported_media"),
    "pdf-as-mp3": Hostile(_file(lambda m: PDF, b"talk.mp3"), 415, "unsupported_media"),
    "zip-as-wav": Hostile(_file(_zip_of_wav), 415, "unsupported_media"),
    "zeros": Hostile(_file(lambda m: b"\x00" * 50_000), 415, "unsupported_media"),
    "video-without-audio": Hostile(_file(lambda m: m.video_only, b"clip.mp4"), 415,
                                   "no_audio_stream"),
    # Truncated containers.
    "empty-file": Hostile(_file(lambda m: b""), 422, "empty_file"),
    "wav-header-only": Hostile(_file(lambda m: m.wav[:44]), 422, "empty_audio"),
    "wav-cut-in-middle": Hostile(_file(lambda m: _half(m.wav)), 422, "truncated_audio"),
    "ogg-cut-after-20-bytes": Hostile(_file(lambda m: m.ogg[:20], b"a.ogg"), 415,
                                      "unsupported_media"),
    "ogg-cut-in-middle": Hostile(_file(lambda m: _half(m.ogg), b"a.ogg"), 422,
                                 "truncated_audio"),
    "mp3-cut-after-10-bytes": Hostile(_file(lambda m: m.mp3[:10], b"a.mp3"), 415,
                                      "unsupported_media"),
    "mp3-cut-in-middle": Hostile(_file(lambda m: _half(m.mp3), b"a.mp3"), 422,
                                 "truncated_audio"),
    "flac-cut-after-10-bytes": Hostile(_file(lambda m: m.flac[:10], b"a.flac"), 415,
                                       "unsupported_media"),
    "flac-cut-in-middle": Hostile(_file(lambda m: _half(m.flac), b"a.flac"), 422,
                                  "corrupt_audio"),
    "m4a-cut-after-12-bytes": Hostile(_file(lambda m: m.m4a[:12], b"a.m4a"), 415,
                                      "unsupported_media"),
    "m4a-cut-in-middle": Hostile(_file(lambda m: _half(m.m4a), b"a.m4a"), 415,
                                 "unsupported_media"),
    # Headers that lie.
    "wav-data-size-near-4gib": Hostile(_file(lambda m: wav(data_size=0xFFFFFFF0)), 422,
                                       "truncated_audio"),
    "wav-data-size-twice-the-file": Hostile(_file(lambda m: wav(seconds=2, data_size=128_000)),
                                            422, "truncated_audio"),
    "flac-declaring-1193-hours": Hostile(_file(lambda m: flac_declaring(m, 2**36 - 1), b"a.flac"),
                                         422, "audio_too_long"),
    "wav-0-hz": Hostile(_file(lambda m: wav(rate=0, frames=16000, byte_rate=0)), 415,
                        "unsupported_media"),
    "wav-1-hz": Hostile(_file(lambda m: wav(rate=1, frames=16000)), 415, "unsupported_media"),
    "wav-10-mhz": Hostile(_file(lambda m: wav(rate=10_000_000, frames=16000)), 415,
                          "unsupported_media"),
    "wav-0-channels": Hostile(_file(lambda m: wav(channels=0, block_align=2, byte_rate=32000)),
                              415, "unsupported_media"),
    # FFmpeg opens these without a decoder for the stream (this was a 500).
    "wav-0-bit-samples": Hostile(_file(lambda m: wav(bits=0, block_align=2, byte_rate=32000)),
                                 415, "unsupported_media"),
    "wav-255-bit-samples": Hostile(_file(lambda m: wav(bits=255, block_align=2, byte_rate=32000)),
                                   415, "unsupported_media"),
    # Over the one-minute limit, measured from a header that does not lie.
    "wav-70-seconds": Hostile(_file(lambda m: wav(rate=1000, seconds=70)), 422, "audio_too_long"),
    # Form fields.
    "options-1-mib": Hostile(_with_options(b'{"instruction": "' + b"x" * 1_048_576 + b'"}'),
                             413, "field_too_large"),
    "options-not-json": Hostile(_with_options(b"{tasks: summary"), 422, "invalid_options"),
    "options-json-array": Hostile(_options(["summary"]), 422, "invalid_options"),
    "options-not-utf8": Hostile(_with_options(b'{"language": "\xff\xfe"}'), 422,
                                "invalid_options"),
    "options-unknown-task": Hostile(_options({"tasks": ["poem"]}), 422, "invalid_options"),
    "options-unknown-field": Hostile(_options({"shell": "rm -rf /"}), 422, "invalid_options"),
    # PostgreSQL cannot store NUL in JSONB (this was a 500).
    "options-nul-character": Hostile(_options({"initial_prompt": "a\x00b"}), 422,
                                     "invalid_options"),
    "options-model-not-allowed": Hostile(_options({"model": "../../models/evil"}), 422,
                                         "model_not_allowed"),
    # Form shape. Two parts of one name used to be glued into one file (or one options value).
    "two-file-parts": Hostile(lambda m: form(part(b"file", m.ogg, filename=b"a.ogg"),
                                             part(b"file", m.ogg, filename=b"b.ogg")),
                              422, "duplicate_field"),
    "two-options-parts": Hostile(lambda m: form(part(b"file", m.ogg, filename=b"a.ogg"),
                                                part(b"options", b'{"tasks": ['),
                                                part(b"options", b'"summary"]}')),
                                 422, "duplicate_field"),
    "1000-small-fields": Hostile(lambda m: form(*[part(b"f%d" % i, b"x") for i in range(1000)],
                                                part(b"file", m.ogg, filename=b"a.ogg")),
                                 422, "unexpected_field"),
    "missing-file-part": Hostile(lambda m: form(part(b"options", b"{}")), 422, "missing_file"),
    "empty-form": Hostile(lambda m: form(), 422, "missing_file"),
    "part-without-disposition": Hostile(lambda m: b"--vf-hostile-7d1c\r\nContent-Type: audio/ogg"
                                        b"\r\n\r\n" + m.ogg + b"\r\n--vf-hostile-7d1c--\r\n",
                                        422, "missing_file"),
    # The body stops inside the file part (it used to be taken as a complete, shorter file).
    "no-closing-boundary": Hostile(lambda m: form(part(b"file", m.ogg, filename=b"a.ogg"),
                                                  closed=False), 400, "malformed_multipart"),
    "body-cut-in-file-part": Hostile(lambda m: file_form(m.wav)[:30_000], 400,
                                     "malformed_multipart"),
    "boundary-mismatch": Hostile(_file(lambda m: m.wav), 400, "malformed_multipart",
                                 content_type="multipart/form-data; boundary=something-else"),
    "garbage-multipart": Hostile(lambda m: b"\x00\x01 not a multipart body " * 100, 400,
                                 "malformed_multipart"),
    # The parser decodes part headers as UTF-8 (a Latin-1 filename was a 500).
    "latin1-filename": Hostile(_file(lambda m: m.wav, "réunion.wav".encode("latin-1")), 400,
                               "malformed_multipart"),
    # Not a multipart form.
    "raw-audio-body": Hostile(lambda m: m.ogg, 415, "unsupported_content_type",
                              content_type="audio/ogg"),
    "json-body": Hostile(lambda m: b'{"file": "AAAA"}', 415, "unsupported_content_type",
                         content_type="application/json"),
    "urlencoded-body": Hostile(lambda m: b"file=AAAA", 415, "unsupported_content_type",
                               content_type="application/x-www-form-urlencoded"),
    "multipart-without-boundary": Hostile(_file(lambda m: m.wav), 415, "unsupported_content_type",
                                          content_type="multipart/form-data"),
    "multipart-mixed": Hostile(_file(lambda m: m.wav), 415, "unsupported_content_type",
                               content_type="multipart/mixed; boundary=vf-hostile-7d1c"),
    # Headers around the body.
    "idempotency-key-with-spaces": Hostile(_file(lambda m: m.wav), 400, "invalid_idempotency_key",
                                           headers=(("Idempotency-Key", "a b c"),)),
    "idempotency-key-300-chars": Hostile(_file(lambda m: m.wav), 400, "invalid_idempotency_key",
                                         headers=(("Idempotency-Key", "k" * 300),)),
}  # fmt: skip


def _post(
    client: TestClient,
    auth: dict[str, str],
    body: bytes,
    content_type: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> Any:
    """POST a raw body to the upload endpoint."""
    headers = {**auth, "Content-Type": content_type, **dict(extra)}
    return client.post("/v1/jobs", headers=headers, content=body)


def _assert_nothing_left(
    sessions: sessionmaker[Session], tenant: str, spool: Path, storage_root: Path
) -> None:
    """No job row, no stored object and no spool file for the tenant."""
    with sessions() as session:
        jobs = session.scalar(select(func.count()).select_from(Job).where(Job.tenant == tenant))
    assert jobs == 0
    assert list(LocalStorage(storage_root).iter_keys(f"{tenant}/")) == []
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_upload_is_refused_and_leaves_nothing(
    name: str,
    client: TestClient,
    media: Media,
    auth: dict[str, str],
    tenant: str,
    sessions: sessionmaker[Session],
    spool: Path,
    storage_root: Path,
) -> None:
    case = HOSTILE[name]
    response = _post(client, auth, case.body(media), case.content_type, case.headers)
    assert response.status_code == case.status, response.text
    error = response.json()["error"]
    assert error["code"] == case.code
    assert error["message"].strip()
    _assert_nothing_left(sessions, tenant, spool, storage_root)


def test_over_size_upload_is_refused_while_streaming(
    spool: Path,
    media: Media,
    auth: dict[str, str],
    tenant: str,
    sessions: sessionmaker[Session],
    storage_root: Path,
) -> None:
    settings = IngestSettings(spool_dir=spool, max_upload_bytes=SMALL_CAP)
    with TestClient(create_app(settings)) as small:
        # The declared length is below the early check, so the cap is hit while parsing.
        response = _post(small, auth, file_form(media.wav[: SMALL_CAP * 4]), MULTIPART)
        declared = small.post(
            "/v1/jobs", headers={**auth, "Content-Type": MULTIPART}, content=file_form(media.flac)
        )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "file_too_large"
    # Far over the cap by its Content-Length: refused before the body is read.
    assert declared.status_code == 413, declared.text
    assert declared.json()["error"]["code"] == "file_too_large"
    _assert_nothing_left(sessions, tenant, spool, storage_root)


# Hostile names on a valid recording (the Content-Disposition parameter, verbatim) and the
# display name each must become.
HOSTILE_NAMES: dict[str, tuple[bytes, str | None]] = {
    "unix-traversal": (b'filename="../../etc/passwd"', "passwd"),
    "absolute-path": (b'filename="/etc/shadow"', "shadow"),
    # Inside a quoted string a backslash escapes the next character, so none survives.
    "windows-traversal": (b'filename="..\\..\\x.wav"', "....x.wav"),
    "windows-absolute": (b'filename="C:\\Windows\\evil.wav"', "C:Windowsevil.wav"),
    "rfc5987-traversal": (b"filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd"),
    "nul-byte": (b'filename="a\x00b.wav"', "ab.wav"),
    "rtl-override": (b'filename="' + "\u202egnp.wav".encode() + b'"', "gnp.wav"),
    "only-dots": (b'filename=".."', ".."),
    "only-control-chars": (b'filename="\x01\x02\x03"', None),
    "trailing-slash": (b'filename="dir/"', None),
    "300-chars": (b'filename="' + b"n" * 296 + b'.wav"', "n" * 255),
    "unicode": (b'filename="' + "Sitzung 🎙 Ü.ogg".encode() + b'"', "Sitzung 🎙 Ü.ogg"),
}


@pytest.mark.parametrize("name", list(HOSTILE_NAMES))
def test_hostile_filename_is_only_display_metadata(
    name: str,
    client: TestClient,
    media: Media,
    auth: dict[str, str],
    tenant: str,
    sessions: sessionmaker[Session],
    storage_root: Path,
    spool: Path,
) -> None:
    parameter, shown = HOSTILE_NAMES[name]
    disposition = b'form-data; name="file"; ' + parameter
    around = storage_root.parent
    before = {p.name for p in around.iterdir()}
    response = _post(client, auth, form(part(b"file", media.ogg, disposition=disposition)),
                     MULTIPART)  # fmt: skip
    assert response.status_code == 202, response.text
    job_id = uuid.UUID(response.json()["id"])
    with sessions() as session:
        job = session.get(Job, job_id)
    assert job is not None
    assert job.source_filename == shown
    # The storage key is built from the tenant and job id alone.
    assert job.source_key == f"{tenant}/{job_id}/source"
    storage = LocalStorage(storage_root)
    assert list(storage.iter_keys(f"{tenant}/")) == [job.source_key]
    with storage.local_copy(job.source_key) as stored:
        assert stored.read_bytes() == media.ogg
    # Nothing was written next to the storage root, nor loose at its top (only tenant trees).
    assert {p.name for p in around.iterdir()} == before
    assert all(p.is_dir() for p in storage_root.iterdir())
    assert list(spool.iterdir()) == []
