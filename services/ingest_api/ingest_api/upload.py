"""Streaming multipart parsing: the file goes to a spool file while it is counted and hashed.

Starlette would spool the whole body to disk before the handler runs, with no size cap,
so the body is parsed here from `request.stream()` and aborted as soon as it is too big.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import BinaryIO

from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException, UnexpectedPartException
from streaming_form_data.targets import BaseTarget, ValueTarget

from voxflow.web.errors import ApiError
from voxflow.webhooks.urls import MAX_URL_LENGTH


class _TooLargeError(Exception):
    pass


@dataclass(frozen=True)
class FormField:
    """A text field the form may carry besides `file`: its size cap and how it is refused."""

    name: str
    max_bytes: int
    repeated: bool = False  # sent as several parts (OpenAI's `timestamp_granularities[]`)
    too_large: tuple[int, str, str] | None = None  # status, code, message; default a 413

    def refusal(self) -> ApiError:
        """The error of a value over `max_bytes`."""
        if self.too_large is not None:
            return ApiError(*self.too_large)
        return ApiError(413, "field_too_large", f"The `{self.name}` field is too large.")


def job_fields(max_options_bytes: int) -> tuple[FormField, ...]:
    """The job API's form fields besides `file`: `options`, `webhook_url` and the known
    speakers' names and reference clips."""
    url_too_long = (422, "invalid_webhook_url",
                    f"The webhook URL is longer than {MAX_URL_LENGTH} characters.")  # fmt: skip
    from ingest_api import known_speakers  # it imports FormField from here

    return (
        FormField("options", max_options_bytes),
        FormField("webhook_url", MAX_URL_LENGTH, too_large=url_too_long),
        *known_speakers.FIELDS,
    )


class _FieldTooLargeError(Exception):
    def __init__(self, field: FormField) -> None:
        super().__init__(field.name)
        self.field = field


class _FieldLimit:
    """Validator of a text part: a value longer than its field's cap is refused."""

    def __init__(self, field: FormField) -> None:
        self.field = field
        self.size = 0

    def __call__(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.field.max_bytes:
            raise _FieldTooLargeError(self.field)


MAX_REPEATS = 16  # parts of one repeated field


class _ManyValues(BaseTarget):  # type: ignore[misc]  # the library ships no types
    """Collects each part of a repeated field as one value (each part within the cap)."""

    def __init__(self, limit: _FieldLimit) -> None:
        super().__init__(validator=limit)
        self.limit = limit
        self.values: list[bytes] = []
        self._chunks: list[bytes] = []

    def on_start(self) -> None:
        """A new part: its own size counts from zero; too many parts are refused."""
        if len(self.values) >= MAX_REPEATS:
            raise _FieldTooLargeError(self.limit.field)
        self.limit.size = 0

    def on_data_received(self, chunk: bytes) -> None:
        """Keep a chunk of the current part."""
        self._chunks.append(chunk)

    def on_finish(self) -> None:
        """The part ended: its bytes are one value."""
        self.values.append(b"".join(self._chunks))
        self._chunks = []


class SpoolTarget(BaseTarget):  # type: ignore[misc]  # the library ships no types
    """Writes a file part to disk, counting and hashing as it goes, up to a byte cap."""

    def __init__(self, handle: BinaryIO, max_bytes: int) -> None:
        super().__init__()
        self.handle = handle
        self.max_bytes = max_bytes
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.seen = False

    def on_start(self) -> None:
        """Mark that the part arrived (an empty file still counts as sent)."""
        self.seen = True

    def on_data_received(self, chunk: bytes) -> None:
        """Count, hash and write one chunk."""
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise _TooLargeError
        self.sha256.update(chunk)
        self.handle.write(chunk)


class _RepeatedPartError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class OncePart(BaseTarget):  # type: ignore[misc]  # the library ships no types
    """Passes one form field's part to `inner`; refuses a second part and notes the part's end.

    The parser would feed every part with the same name into the same target, so two `file`
    parts would be stored as one concatenated file.
    """

    def __init__(self, name: str, inner: BaseTarget, *, repeated: bool = False) -> None:
        super().__init__()
        self.name = name
        self.inner = inner
        self.repeated = repeated
        self.started = False
        self.ended = False

    def start(self) -> None:
        """Start the field's part (its only one, unless the field repeats)."""
        if self.started and not self.repeated:
            raise _RepeatedPartError(self.name)
        self.started = True
        self.ended = False
        self.inner.start()

    def data_received(self, chunk: bytes) -> None:
        """Pass a chunk on."""
        self.inner.data_received(chunk)

    def finish(self) -> None:
        """Note that the part ended with a boundary."""
        self.inner.finish()
        self.ended = True

    def set_multipart_filename(self, filename: str) -> None:
        """Pass the part's filename on."""
        self.inner.set_multipart_filename(filename)

    def set_multipart_content_type(self, content_type: str) -> None:
        """Pass the part's content type on."""
        self.inner.set_multipart_content_type(content_type)


@dataclass
class ParsedUpload:
    """A spooled upload and its form fields."""

    path: Path
    size: int
    sha256: str
    filename: str | None
    options: bytes | None
    webhook_url: bytes | None = None
    fields: dict[str, list[bytes]] = dataclass_field(default_factory=dict)  # every text field

    def value(self, name: str) -> bytes | None:
        """A single-valued text field as sent (None when absent or empty)."""
        values = self.fields.get(name) or []
        return values[0] if values and values[0] else None


def clean_filename(name: str | None) -> str | None:
    """Keep a client filename for display only: last path part, printable, bounded."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    return base[:255] or None


async def parse_upload(
    headers: dict[str, str],
    body: AsyncIterator[bytes],
    *,
    spool_dir: Path | None,
    max_bytes: int,
    max_options_bytes: int,
    deadline_seconds: float | None = None,
    fields: tuple[FormField, ...] | None = None,
) -> ParsedUpload:
    """Parse a multipart body with a `file` part and optional text parts: `fields`, by
    default the job API's (`options` and `webhook_url`); any other part is refused.

    The whole body must arrive within `deadline_seconds`: a client trickling bytes would
    otherwise hold a connection, a spool file and a worker slot for as long as it likes.
    """
    fd, name = tempfile.mkstemp(prefix="voxflow-upload-", dir=spool_dir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            file_target = SpoolTarget(handle, max_bytes)
            accepted = job_fields(max_options_bytes) if fields is None else fields
            targets = {
                spec.name: _ManyValues(_FieldLimit(spec)) if spec.repeated
                else ValueTarget(validator=_FieldLimit(spec))
                for spec in accepted
            }  # fmt: skip
            try:
                parser = StreamingFormDataParser(headers, strict=True)
            except ParseFailedException as exc:
                raise ApiError(
                    415,
                    "unsupported_content_type",
                    "Send the upload as multipart/form-data with a boundary.",
                ) from exc
            parts = [OncePart("file", file_target)] + [
                OncePart(spec.name, targets[spec.name], repeated=spec.repeated) for spec in accepted
            ]
            for part in parts:
                parser.register(part.name, part)
            names = [part.name for part in parts]
            try:
                async with asyncio.timeout(deadline_seconds):
                    await _feed(parser, body, max_bytes, names)
            except TimeoutError as exc:
                raise ApiError(
                    408,
                    "upload_too_slow",
                    f"The upload did not arrive within {deadline_seconds:g} s; send it again "
                    "over a faster connection.",
                ) from exc
        if not file_target.seen:
            # The cleanup below must also run for this error, hence the raise inside the try.
            raise ApiError(422, "missing_file", "The form has no `file` part with the audio.")  # noqa: TRY301
        for part in parts:
            if part.started and not part.ended:  # the body stopped before the part's boundary
                raise ApiError(  # noqa: TRY301
                    400,
                    "malformed_multipart",
                    f"The multipart body ends inside the `{part.name}` part; send the whole form.",
                )
        values = {
            name: target.values if isinstance(target, _ManyValues) else [target.value]
            for name, target in targets.items()
            if isinstance(target, _ManyValues) or target.value
        }
        return ParsedUpload(
            path=path,
            size=file_target.size,
            sha256=file_target.sha256.hexdigest(),
            filename=clean_filename(file_target.multipart_filename),
            options=(values.get("options") or [b""])[0] or None,
            webhook_url=(values.get("webhook_url") or [b""])[0] or None,
            fields=values,
        )
    except BaseException:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 (unlinking a local file is instant)
        raise


async def _feed(
    parser: StreamingFormDataParser, body: AsyncIterator[bytes], max_bytes: int, names: list[str]
) -> None:
    try:
        async for chunk in body:
            parser.data_received(chunk)
    except _TooLargeError as exc:
        raise ApiError(
            413, "file_too_large", f"The file is larger than the limit of {max_bytes} bytes."
        ) from exc
    except _FieldTooLargeError as exc:
        raise exc.field.refusal() from exc
    except UnicodeDecodeError as exc:  # the parser decodes part headers (filenames) as UTF-8
        raise ApiError(
            400, "malformed_multipart", "The multipart part headers are not valid UTF-8."
        ) from exc
    except _RepeatedPartError as exc:
        raise ApiError(
            422, "duplicate_field", f"The form field `{exc.name}` was sent more than once."
        ) from exc
    except UnexpectedPartException as exc:
        expected = [f"`{name}`" for name in names]
        listed = (
            ", ".join(expected[:-1]) + f" and {expected[-1]}" if len(expected) > 1 else expected[0]
        )
        raise ApiError(
            422, "unexpected_field", f"Unexpected form field {exc.part_name!r}; send {listed}."
        ) from exc
    except ParseFailedException as exc:
        raise ApiError(
            400, "malformed_multipart", f"The multipart body is malformed: {exc}."
        ) from exc
