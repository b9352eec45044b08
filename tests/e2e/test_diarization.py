"""Diarization end to end: a two-speaker conversation through the job API and OpenAI's route,
with real workers, a known speaker named by a clip of their voice."""

from __future__ import annotations

import base64
import io
import json
import wave
from pathlib import Path

import numpy as np
import openai
import pytest
from fastapi.testclient import TestClient
from faster_whisper import decode_audio
from openai.types.audio import TranscriptionDiarized

from tests.e2e.conftest import Worker
from tests.e2e.helpers import wait_done

pytestmark = pytest.mark.e2e

DATA = Path(__file__).parents[1] / "services" / "transcription_worker" / "data" / "diarization"
CONVERSATION = DATA / "conv2_2spk.ogg"


def truth() -> list[tuple[float, float, str]]:
    """The conversation's reference turns (RTTM): start, end, speaker."""
    turns = []
    for line in (DATA / "conv2_2spk.rttm").read_text().splitlines():
        fields = line.split()
        start, length = float(fields[3]), float(fields[4])
        turns.append((start, start + length, fields[7]))
    return turns


def voice_clip(speaker: str) -> str:
    """A data URL of `speaker`'s longest turn: the reference a user would record."""
    start, end, _ = max((t for t in truth() if t[2] == speaker), key=lambda t: t[1] - t[0])
    samples = decode_audio(str(CONVERSATION))[int(start * 16_000) : int(end * 16_000)]
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return "data:audio/wav;base64," + base64.b64encode(out.getvalue()).decode()


def share_with(segments: list[dict[str, object]], speaker: str, reference: str) -> float:
    """How much of `speaker`'s segment time falls in `reference`'s true turns."""
    total = inside = 0.0
    for segment in segments:
        if segment["speaker"] != speaker:
            continue
        start, end = float(segment["start"]), float(segment["end"])  # type: ignore[arg-type]
        total += end - start
        for t_start, t_end, who in truth():
            if who == reference:
                inside += max(0.0, min(end, t_end) - max(start, t_start))
    return inside / total if total else 0.0


def test_a_diarized_job_names_a_known_speaker_in_every_format(
    ingest: TestClient, status: TestClient, auth: dict[str, str], workers: dict[str, Worker]
) -> None:
    files = {"file": (CONVERSATION.name, CONVERSATION.read_bytes(), "audio/ogg")}
    data = {"options": json.dumps({"diarize": True}), "known_speaker_names[]": ["Rita"],
            "known_speaker_references[]": [voice_clip("spk1")]}  # fmt: skip
    answer = ingest.post("/v1/jobs", headers=auth, files=files, data=data)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    assert wait_done(status, auth, job_id, workers)["status"] == "completed"
    transcript = status.get(f"/v1/jobs/{job_id}/transcript", headers=auth).json()
    speakers = transcript["speakers"]
    assert [s["label"] for s in speakers] == ["A", "B"]
    assert [s["name"] for s in speakers].count("Rita") == 1
    rita = next(s for s in speakers if s["name"] == "Rita")
    assert rita["talk_seconds"] > 5
    # Rita's segments are (mostly) where the reference says spk1 speaks, the other's spk0.
    assert share_with(transcript["segments"], "Rita", "spk1") > 0.8
    other = next(s["label"] for s in speakers if s["name"] is None)
    assert share_with(transcript["segments"], other, "spk0") > 0.8
    assert all(w["speaker"] == s["speaker"] for s in transcript["segments"]
               for w in s.get("words", []))  # fmt: skip

    txt = status.get(f"/v1/jobs/{job_id}/transcript?format=txt", headers=auth).text
    assert "\n\nRita: " in txt or txt.startswith("Rita: ")
    assert f"{other}: " in txt
    assert "<v Rita>" in status.get(f"/v1/jobs/{job_id}/transcript?format=vtt", headers=auth).text


def test_openai_diarized_json_parses_in_the_sdk_and_streams_segments(
    ingest: TestClient, auth: dict[str, str], workers: dict[str, Worker]
) -> None:
    client = openai.OpenAI(api_key=auth["Authorization"][7:], base_url="http://testserver/v1",
                           http_client=ingest, max_retries=0)  # fmt: skip
    diarized = client.audio.transcriptions.create(
        model="whisper-1", file=CONVERSATION, response_format="diarized_json"
    )
    assert isinstance(diarized, TranscriptionDiarized)
    assert {s.speaker for s in diarized.segments} == {"A", "B"}
    assert diarized.segments[0].speaker == "A"  # in order of appearance
    assert " ".join(s.text for s in diarized.segments) == diarized.text
    events = list(client.audio.transcriptions.create(
        model="whisper-1", file=CONVERSATION, response_format="diarized_json", stream=True
    ))  # fmt: skip
    kinds = [event.type for event in events]
    assert kinds[-1] == "transcript.text.done"
    assert kinds.count("transcript.text.segment") == len(diarized.segments)
    segments = [e for e in events if e.type == "transcript.text.segment"]
    assert [s.speaker for s in segments] == [s.speaker for s in diarized.segments]
