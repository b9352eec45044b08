"""Known speakers: names with short reference clips of their voices, sent with an upload.

OpenAI's fields, on both upload routes: `known_speaker_names[]` and
`known_speaker_references[]`, in the same order, each reference a data URL of a short
recording (`data:audio/wav;base64,...`). Each clip is probed like an upload, stored beside the
recording (`<recording key>.speaker-<n>`, removed with it by deletion and retention), and
the job's options list them as `known_speakers` ({"name", "key"}). The worker embeds each
clip and gives its name to the diarized speaker whose voice matches it (docs/diarization.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from ingest_api.audio_probe import AudioRejectedError, probe_isolated
from ingest_api.settings import IngestSettings
from ingest_api.upload import FormField, ParsedUpload
from voxflow.storage import Storage, StorageError
from voxflow.web.errors import ApiError

MAX_KNOWN_SPEAKERS = 4  # as OpenAI's API
MAX_NAME_CHARS = 100
MAX_REFERENCE_SECONDS = 30.0
MIN_REFERENCE_SECONDS = 1.0  # shorter clips give no reliable voice print
# A data URL of a clip: 30 s of 16 kHz 16-bit WAV in base64 is about 1.3 MB.
MAX_REFERENCE_CHARS = 2 * 1024 * 1024

FIELDS = (
    FormField("known_speaker_names[]", 4 * MAX_NAME_CHARS, repeated=True),
    FormField("known_speaker_references[]", MAX_REFERENCE_CHARS, repeated=True),
)

# The fields in an OpenAPI multipart schema.
SCHEMA: dict[str, object] = {
    "known_speaker_names[]": {
        "type": "array", "maxItems": MAX_KNOWN_SPEAKERS,
        "items": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS},
        "description": "With `diarize`: names of speakers whose voices are known, each with "
        "a clip in `known_speaker_references[]` (same order).",
    },
    "known_speaker_references[]": {
        "type": "array", "maxItems": MAX_KNOWN_SPEAKERS,
        "items": {"type": "string", "maxLength": MAX_REFERENCE_CHARS},
        "description": f"Data URLs (`data:audio/wav;base64,...`) of {MIN_REFERENCE_SECONDS:g} "
        f"to {MAX_REFERENCE_SECONDS:g} s of each known speaker's voice.",
    },
}  # fmt: skip

_DATA_URL = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,(?P<data>.*)$", re.S
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class KnownSpeaker:
    """A named voice, its clip spooled to a local file until it is stored."""

    name: str
    path: Path


def sent(upload: ParsedUpload) -> bool:
    """Whether the upload names known speakers (or sends references)."""
    return any(upload.fields.get(field.name) for field in FIELDS)


def fingerprint(upload: ParsedUpload) -> list[list[str]]:
    """The known speakers as an idempotency fingerprint sees them: names and clip digests."""
    names = [raw.decode("utf-8", "replace") for raw in upload.fields.get(FIELDS[0].name, [])]
    clips = [hashlib.sha256(raw).hexdigest() for raw in upload.fields.get(FIELDS[1].name, [])]
    return [names, clips]


def _refused(code: str, message: str) -> ApiError:
    return ApiError(422, code, message)


def _names(upload: ParsedUpload) -> list[str]:
    names = []
    for raw in upload.fields.get("known_speaker_names[]", []):
        name = " ".join(raw.decode("utf-8", "replace").split())
        if not name or len(name) > MAX_NAME_CHARS or _CONTROL.search(name):
            raise _refused(
                "invalid_known_speaker_name",
                f"A known speaker's name must be 1 to {MAX_NAME_CHARS} printable characters.",
            )
        names.append(name)
    if len(set(names)) != len(names):
        raise _refused("invalid_known_speaker_name", "Each known speaker needs a different name.")
    return names


def _clip(name: str, reference: bytes) -> bytes:
    found = _DATA_URL.match(reference.decode("ascii", "replace").strip())
    if found is None:
        raise _refused(
            "invalid_known_speaker_reference",
            f"The reference of {name!r} is not a base64 data URL (data:audio/wav;base64,...).",
        )
    try:
        return base64.b64decode(found["data"], validate=True)
    except (binascii.Error, ValueError):
        raise _refused(
            "invalid_known_speaker_reference", f"The reference of {name!r} is not valid base64."
        ) from None


def read(upload: ParsedUpload, settings: IngestSettings) -> list[KnownSpeaker]:
    """Check the known speakers' fields and spool each clip (blocking: call from a thread).

    Every clip is probed as an upload is: audio that does not decode, or that is too short or
    too long to be a voice print, is refused with a 422 naming the speaker.
    """
    names = _names(upload)
    references = upload.fields.get("known_speaker_references[]", [])
    if len(names) != len(references):
        raise _refused(
            "known_speakers_mismatch",
            f"{len(names)} known_speaker_names[] but {len(references)} "
            "known_speaker_references[]: send one reference per name, in the same order.",
        )
    if len(names) > MAX_KNOWN_SPEAKERS:
        raise _refused(
            "too_many_known_speakers", f"At most {MAX_KNOWN_SPEAKERS} known speakers per upload."
        )
    spooled: list[KnownSpeaker] = []
    try:
        for name, reference in zip(names, references, strict=True):
            audio = _clip(name, reference)
            with tempfile.NamedTemporaryFile(
                prefix="voxflow-speaker-", dir=settings.spool_dir, delete=False
            ) as out:
                spooled.append(KnownSpeaker(name, Path(out.name)))
                out.write(audio)
            _check_clip(spooled[-1], settings)
    except BaseException:
        discard(spooled)
        raise
    return spooled


def _check_clip(speaker: KnownSpeaker, settings: IngestSettings) -> None:
    try:
        info = probe_isolated(
            speaker.path, max_seconds=MAX_REFERENCE_SECONDS,
            timeout=settings.probe_timeout_seconds,
        )  # fmt: skip
    except AudioRejectedError as exc:
        raise _refused(
            "invalid_known_speaker_reference",
            f"The reference of {speaker.name!r} is not usable audio: {exc.message}",
        ) from exc
    if info.duration_seconds < MIN_REFERENCE_SECONDS:
        raise _refused(
            "invalid_known_speaker_reference",
            f"The reference of {speaker.name!r} lasts {info.duration_seconds:.1f} s; a voice "
            f"print needs at least {MIN_REFERENCE_SECONDS:g} s of speech.",
        )


def discard(speakers: list[KnownSpeaker]) -> None:
    """Remove the spooled clips."""
    for speaker in speakers:
        speaker.path.unlink(missing_ok=True)


async def store(
    storage: Storage, recording_key: str, speakers: list[KnownSpeaker]
) -> list[dict[str, str]]:
    """Store the clips beside the recording; the job options' `known_speakers`."""
    stored: list[dict[str, str]] = []
    try:
        for index, speaker in enumerate(speakers):
            key = f"{recording_key}.speaker-{index}"
            await run_in_threadpool(storage.put_file, key, speaker.path)
            stored.append({"name": speaker.name, "key": key})
    except StorageError as exc:
        for done in stored:
            await run_in_threadpool(storage.delete, done["key"])
        raise ApiError(
            503, "storage_unavailable", "The audio storage is unavailable; retry shortly.",
            {"Retry-After": "5"},
        ) from exc  # fmt: skip
    return stored
