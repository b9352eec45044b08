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
from pathlib import Path
from typing import BinaryIO

from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException, UnexpectedPartException
from streaming_form_data.targets import BaseTarget, ValueTarget
from streaming_form_data.validators import MaxSizeValidator, ValidationError

from voxflow.web.errors import ApiError
from voxflow.webhooks.urls import MAX_URL_LENGTH


class _TooLargeError(Exception):
    pass


class _UrlTooLongError(Exception):
    pass


class _UrlLimit:
    """Validator of the `webhook_url` part: a URL longer than the limit is a 422, not a 413."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0

    def __call__(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise _UrlTooLongError


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

    def __init__(self, name: str, inner: BaseTarget) -> None:
        super().__init__()
        self.name = name
        self.inner = inner
        self.started = False
        self.ended = False

    def start(self) -> None:
        """Start the field's only part."""
        if self.started:
            raise _RepeatedPartError(self.name)
        self.started = True
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
) -> ParsedUpload:
    """Parse a multipart body with a `file` part and optional `options` and `webhook_url` parts.

    The whole body must arrive within `deadline_seconds`: a client trickling bytes would
    otherwise hold a connection, a spool file and a worker slot for as long as it likes.
    """
    fd, name = tempfile.mkstemp(prefix="voxflow-upload-", dir=spool_dir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            file_target = SpoolTarget(handle, max_bytes)
            options_target = ValueTarget(validator=MaxSizeValidator(max_options_bytes))
            webhook_target = ValueTarget(validator=_UrlLimit(MAX_URL_LENGTH))
            try:
                parser = StreamingFormDataParser(headers, strict=True)
            except ParseFailedException as exc:
                raise ApiError(
                    415,
                    "unsupported_content_type",
                    "Send the upload as multipart/form-data with a boundary.",
                ) from exc
            parts = [
                OncePart("file", file_target),
                OncePart("options", options_target),
                OncePart("webhook_url", webhook_target),
            ]
            for part in parts:
                parser.register(part.name, part)
            try:
                async with asyncio.timeout(deadline_seconds):
                    await _feed(parser, body, max_bytes)
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
        options_value: bytes = options_target.value
        webhook_value: bytes = webhook_target.value
        return ParsedUpload(
            path=path,
            size=file_target.size,
            sha256=file_target.sha256.hexdigest(),
            filename=clean_filename(file_target.multipart_filename),
            options=options_value or None,
            webhook_url=webhook_value or None,
        )
    except BaseException:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 (unlinking a local file is instant)
        raise


async def _feed(
    parser: StreamingFormDataParser, body: AsyncIterator[bytes], max_bytes: int
) -> None:
    try:
        async for chunk in body:
            parser.data_received(chunk)
    except _TooLargeError as exc:
        raise ApiError(
            413, "file_too_large", f"The file is larger than the limit of {max_bytes} bytes."
        ) from exc
    except ValidationError as exc:
        raise ApiError(413, "field_too_large", "The `options` field is too large.") from exc
    except _UrlTooLongError as exc:
        raise ApiError(
            422, "invalid_webhook_url",
            f"The webhook URL is longer than {MAX_URL_LENGTH} characters.",
        ) from exc  # fmt: skip
    except UnicodeDecodeError as exc:  # the parser decodes part headers (filenames) as UTF-8
        raise ApiError(
            400, "malformed_multipart", "The multipart part headers are not valid UTF-8."
        ) from exc
    except _RepeatedPartError as exc:
        raise ApiError(
            422, "duplicate_field", f"The form field `{exc.name}` was sent more than once."
        ) from exc
    except UnexpectedPartException as exc:
        raise ApiError(
            422,
            "unexpected_field",
            f"Unexpected form field {exc.part_name!r}; send `file`, `options` and `webhook_url`.",
        ) from exc
    except ParseFailedException as exc:
        raise ApiError(
            400, "malformed_multipart", f"The multipart body is malformed: {exc}."
        ) from exc
