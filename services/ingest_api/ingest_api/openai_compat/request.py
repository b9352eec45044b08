"""OpenAI's transcription request: its form fields, checked and turned into a job's options."""

from __future__ import annotations

import math

from pydantic import BaseModel, ValidationError

from ingest_api import known_speakers
from ingest_api.schemas import JobOptions
from ingest_api.settings import IngestSettings
from ingest_api.upload import FormField, ParsedUpload
from voxflow.web.errors import ApiError

ALIAS = "whisper-1"  # what most OpenAI clients send: the deployment's default model
FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
# OpenAI streams these; the others are whole documents.
STREAM_FORMATS = ("json", "text", "diarized_json")
GRANULARITIES = ("segment", "word")

# The form fields of OpenAI's request besides `file` (names as its SDKs send them), capped in
# bytes: four per character of the documented lengths (UTF-8).
FIELDS = (
    FormField("model", 800),
    FormField("language", 16),
    FormField("prompt", 4000),
    FormField("response_format", 32),
    FormField("temperature", 32),
    FormField("timestamp_granularities[]", 16, repeated=True),
    FormField("stream", 8),
    *known_speakers.FIELDS,
)


class Asked(BaseModel):
    """What the caller asked for, besides the job itself."""

    response_format: str
    granularities: list[str]
    options: JobOptions
    stream: bool = False


def _text(upload: ParsedUpload, name: str) -> str | None:
    raw = upload.value(name)
    return raw.decode("utf-8", "replace").strip() if raw else None


def read_request(upload: ParsedUpload, settings: IngestSettings) -> Asked:
    """Check OpenAI's fields and turn them into the job's options."""
    model = _text(upload, "model") or ALIAS
    if model != ALIAS and model not in settings.models_allowed():
        offered = ", ".join([ALIAS, *settings.models_allowed()])
        raise ApiError(
            400, "model_not_found", f"The model {model!r} is not offered here (offered: {offered})."
        )
    response_format = _text(upload, "response_format") or "json"
    if response_format not in FORMATS:
        raise ApiError(
            400, "invalid_response_format",
            f"response_format {response_format!r} is not one of {', '.join(FORMATS)}.",
        )  # fmt: skip
    sent = upload.fields.get("timestamp_granularities[]", [])
    granularities = [g.decode("utf-8", "replace").strip() for g in sent if g.strip()]
    if any(g not in GRANULARITIES for g in granularities):
        raise ApiError(
            400, "invalid_timestamp_granularities",
            "timestamp_granularities[] takes `segment` and `word`.",
        )  # fmt: skip
    if granularities and response_format != "verbose_json":
        raise ApiError(
            400, "invalid_timestamp_granularities",
            "timestamp_granularities[] needs response_format `verbose_json`.",
        )  # fmt: skip
    temperature = _text(upload, "temperature")
    if temperature is not None:
        try:
            value = float(temperature)
        except ValueError:
            value = math.nan
        if not 0 <= value <= 1:
            raise ApiError(400, "invalid_temperature", "temperature must be between 0 and 1.")
    stream = (_text(upload, "stream") or "false").lower()
    if stream not in ("true", "false"):
        raise ApiError(400, "invalid_stream", "stream must be `true` or `false`.")
    if stream == "true" and response_format not in STREAM_FORMATS:
        raise ApiError(
            400, "invalid_response_format",
            f"With stream=true the answer is a stream of events; response_format "
            f"{response_format!r} cannot be streamed (use json or text, or no stream).",
        )  # fmt: skip
    diarized = response_format == "diarized_json"
    if known_speakers.sent(upload) and not diarized:
        raise ApiError(
            400, "known_speakers_need_diarize",
            "known_speaker_names[] and known_speaker_references[] need response_format "
            "`diarized_json`.",
        )  # fmt: skip
    language = _text(upload, "language")
    try:
        options = JobOptions(
            model=None if model == ALIAS else model,
            language=language.lower() if language else None,
            initial_prompt=_text(upload, "prompt"),
            word_timestamps=True if "word" in granularities else None,
            live=True if stream == "true" else None,
            diarize=True if diarized else None,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "request"
        code = "invalid_language" if field == "language" else "invalid_request"
        raise ApiError(400, code, f"{field}: {first['msg']}.") from None
    return Asked(
        response_format=response_format, granularities=granularities, options=options,
        stream=stream == "true",
    )  # fmt: skip
