"""Status API: timelines, transcripts in every format, LLM results and the OpenAPI document."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient

from status_api.schemas import TranscriptFormat
from tests.services.status_api.conftest import DURATION, SEGMENTS, TEXT, WORKER, JobMaker
from voxflow.db import session_scope
from voxflow.jobs import service
from voxflow.jobs.models import Transcript
from voxflow.jobs.states import JobStatus
from voxflow.transcript_formats import FORMATS


def _generating_job(jobs: JobMaker, tasks: list[str]) -> uuid.UUID:
    (job_id,) = jobs.queued(tasks=tasks)
    jobs.transcribe(job_id)
    jobs.claim(job_id, JobStatus.TRANSCRIBED)
    return job_id


def test_events_are_the_timeline_in_order(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    job_id = _generating_job(jobs, ["summary"])
    jobs.add_result(job_id, "summary", 10, 5, "0.001")
    jobs.finish_generation(job_id)
    response = client.get(f"/v1/jobs/{job_id}/events", headers=auth)
    assert response.status_code == 200
    events = response.json()
    steps = [(e["from_status"], e["to_status"], e["actor"]) for e in events]
    assert steps == [
        (None, "queued", "ingest_api"),
        ("queued", "transcribing", WORKER),
        ("transcribing", "transcribed", WORKER),
        ("transcribed", "generating", WORKER),
        ("generating", "completed", WORKER),
    ]
    assert events[1]["detail"] == {"attempt": 1}
    assert events[0]["detail"] == {}
    stamps = [e["at"] for e in events]
    assert stamps == sorted(stamps)


def test_events_record_a_failure(client: TestClient, jobs: JobMaker, auth: dict[str, str]) -> None:
    (job_id,) = jobs.queued()
    jobs.fail(job_id, JobStatus.QUEUED, "bad_audio", "no audio stream")
    events = client.get(f"/v1/jobs/{job_id}/events", headers=auth).json()
    assert [e["to_status"] for e in events] == ["queued", "failed"]
    assert events[-1]["detail"] == {"code": "bad_audio"}


def test_transcript_formats_match_the_shared_renderer() -> None:
    assert set(get_args(TranscriptFormat)) == set(FORMATS)


def test_transcript_defaults_to_json(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    (job_id,) = jobs.queued()
    jobs.transcribe(job_id)
    response = client.get(f"/v1/jobs/{job_id}/transcript", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "content-disposition" not in response.headers
    body = json.loads(response.text)
    assert body["language"] == "en"
    assert body["duration_seconds"] == DURATION
    assert body["text"] == TEXT
    assert [(s["start"], s["end"], s["text"]) for s in body["segments"]] == [
        (s["start"], s["end"], str(s["text"]).strip()) for s in SEGMENTS
    ]
    assert body["language_probability"] == 0.97


SRT = (
    "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n"
    "2\n00:01:01,040 --> 00:01:05,500\nFish & <chips>.\n\n"
    "3\n01:01:01,250 --> 01:01:03,000\nGeneral Kenobi.\n"
)
VTT = (
    "WEBVTT\n\n"
    "00:00:00.000 --> 00:00:02.500\nHello there.\n\n"
    "00:01:01.040 --> 00:01:05.500\nFish &amp; &lt;chips&gt;.\n\n"
    "01:01:01.250 --> 01:01:03.000\nGeneral Kenobi.\n"
)


@pytest.mark.parametrize(
    ("fmt", "media_type", "expected"),
    [
        ("txt", "text/plain", TEXT + "\n"),
        ("srt", "application/x-subrip", SRT),
        ("vtt", "text/vtt", VTT),
    ],
)
def test_transcript_text_formats(
    client: TestClient,
    jobs: JobMaker,
    auth: dict[str, str],
    fmt: str,
    media_type: str,
    expected: str,
) -> None:
    (job_id,) = jobs.queued()
    jobs.transcribe(job_id)
    response = client.get(f"/v1/jobs/{job_id}/transcript", params={"format": fmt}, headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type
    assert "charset=utf-8" in response.headers["content-type"]
    assert response.headers["content-disposition"] == f'inline; filename="{job_id}.{fmt}"'
    assert response.text == expected


def test_unknown_transcript_format_is_422(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    (job_id,) = jobs.queued()
    jobs.transcribe(job_id)
    response = client.get(f"/v1/jobs/{job_id}/transcript", params={"format": "docx"}, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


# A stored transcript as the engine writes it now: verbose segment fields and words.
WORDY_TEXT = "Remember to call the dentist on Monday and to buy milk, bread and eggs on the way."


def _wordy_segments() -> list[dict[str, Any]]:
    words = [
        {"word": f" {word}", "start": 10.0 + 0.4 * i, "end": 10.3 + 0.4 * i, "probability": 0.9}
        for i, word in enumerate(WORDY_TEXT.split())
    ]
    return [
        {
            "id": 0,
            "seek": 0,
            "start": 10.0,
            "end": 17.0,
            "text": " " + WORDY_TEXT,
            "tokens": [50364, 1002, 50714],
            "temperature": 0.0,
            "avg_logprob": -0.21,
            "compression_ratio": 1.1,
            "no_speech_prob": 0.02,
            "words": words,
        }
    ]


def _wordy_job(jobs: JobMaker) -> uuid.UUID:
    (job_id,) = jobs.queued()
    jobs.claim(job_id)
    transcript = Transcript(
        job_id=job_id,
        language="de",
        language_probability=0.88,
        duration_seconds=DURATION,
        text=WORDY_TEXT,
        segments=_wordy_segments(),
        model="small",
        decode_options={"word_timestamps": True},
        processing_seconds=1.0,
    )
    with session_scope(jobs.sessions) as session:
        service.finish_transcription(session, job_id, WORKER, transcript)
    return job_id


def test_transcript_verbose_json(client: TestClient, jobs: JobMaker, auth: dict[str, str]) -> None:
    (job_id,) = jobs.queued()
    jobs.transcribe(job_id)
    response = client.get(
        f"/v1/jobs/{job_id}/transcript", params={"format": "verbose_json"}, headers=auth
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "content-disposition" not in response.headers
    body = response.json()
    assert list(body) == ["task", "language", "duration", "text", "segments"]  # no words
    assert body["task"] == "transcribe"
    assert body["language"] == "english"
    assert body["duration"] == DURATION
    assert body["text"] == TEXT
    assert body["segments"][1] == {
        "id": 1,
        "seek": 0,
        "start": 61.04,
        "end": 65.5,
        "text": "Fish & <chips>.",
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": 0.0,
        "compression_ratio": 0.0,
        "no_speech_prob": 0.0,
    }


def test_transcript_verbose_json_with_words(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    job_id = _wordy_job(jobs)
    url = f"/v1/jobs/{job_id}/transcript"
    body = client.get(url, params={"format": "verbose_json"}, headers=auth).json()
    assert body["language"] == "german"
    (segment,) = body["segments"]
    assert segment["tokens"] == [50364, 1002, 50714]
    assert segment["avg_logprob"] == -0.21
    assert "words" not in segment
    assert [w["word"] for w in body["words"]] == WORDY_TEXT.split()
    assert set(body["words"][0]) == {"word", "start", "end"}
    own = client.get(url, headers=auth).json()
    assert own["language"] == "de"
    assert own["language_probability"] == 0.88
    assert len(own["segments"][0]["words"]) == len(WORDY_TEXT.split())


_CUE_TIME = re.compile(r"(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})")


def _srt_cues(body: str) -> list[tuple[float, float, list[str]]]:
    cues = []
    for block in body.strip("\n").split("\n\n"):
        _, times, *lines = block.split("\n")
        match = _CUE_TIME.fullmatch(times)
        assert match
        h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(part) for part in match.groups())
        start = h1 * 3600 + m1 * 60 + s1 + ms1 / 1000
        end = h2 * 3600 + m2 * 60 + s2 + ms2 / 1000
        cues.append((start, end, lines))
    return cues


@pytest.mark.parametrize("max_line_chars", [20, 42, 80])
def test_transcript_srt_wraps_at_max_line_chars(
    client: TestClient, jobs: JobMaker, auth: dict[str, str], max_line_chars: int
) -> None:
    job_id = _wordy_job(jobs)
    params: dict[str, str | int] = {"format": "srt", "max_line_chars": max_line_chars}
    response = client.get(f"/v1/jobs/{job_id}/transcript", params=params, headers=auth)
    assert response.status_code == 200
    cues = _srt_cues(response.text)
    assert " ".join(line for _, _, lines in cues for line in lines) == WORDY_TEXT
    assert all(len(line) <= max_line_chars for _, _, lines in cues for line in lines)
    assert all(len(lines) <= 2 for _, _, lines in cues)
    assert cues[0][0] == 10.0
    assert cues[-1][1] == 17.0
    words_before = 0
    for (_, end, lines), (start, _, _) in itertools.pairwise(cues):
        words_before += len(" ".join(lines).split())
        assert end == start == round(10.0 + 0.4 * words_before, 3)  # split at word times
    assert len(cues) == (3 if max_line_chars == 20 else 1)


def test_transcript_vtt_uses_max_line_chars(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    job_id = _wordy_job(jobs)
    url = f"/v1/jobs/{job_id}/transcript"
    narrow = client.get(url, params={"format": "vtt", "max_line_chars": 20}, headers=auth).text
    wide = client.get(url, params={"format": "vtt"}, headers=auth).text
    assert narrow.startswith("WEBVTT\n\n")
    assert max(len(line) for line in narrow.splitlines()) <= 29  # the timing line
    assert narrow.count(" --> ") > wide.count(" --> ")


@pytest.mark.parametrize("max_line_chars", ["19", "81", "0", "wide"])
def test_max_line_chars_out_of_bounds_is_422(
    client: TestClient, jobs: JobMaker, auth: dict[str, str], max_line_chars: str
) -> None:
    (job_id,) = jobs.queued()
    jobs.transcribe(job_id)
    params = {"format": "srt", "max_line_chars": max_line_chars}
    response = client.get(f"/v1/jobs/{job_id}/transcript", params=params, headers=auth)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_transcript_not_ready_is_409_with_the_status(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    queued, running = jobs.queued(count=2)
    jobs.claim(running)
    for job_id, status in ((queued, "queued"), (running, "transcribing")):
        response = client.get(f"/v1/jobs/{job_id}/transcript", headers=auth)
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "transcript_not_ready"
        assert status in error["message"]


def test_failed_job_transcript_is_409_with_the_reason(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    (job_id,) = jobs.queued()
    jobs.claim(job_id)
    jobs.fail(job_id, JobStatus.TRANSCRIBING, "attempts_exhausted", "tried 3 times")
    response = client.get(f"/v1/jobs/{job_id}/transcript", params={"format": "srt"}, headers=auth)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "transcript_not_ready"
    assert "failed" in error["message"]
    assert "attempts_exhausted" in error["message"]


def test_results_list_outputs_and_sum_usage(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    job_id = _generating_job(jobs, ["summary", "diary", "action_items"])
    jobs.add_result(job_id, "summary", 1200, 300, "0.001234")
    jobs.add_result(job_id, "diary", 800, 150, "0.000100")
    jobs.add_result(job_id, "action_items", 1000, 50, "0.010001")
    jobs.add_call(job_id, "summary", "overloaded")
    jobs.add_call(job_id, "summary", "ok", "0.001234")
    partial = client.get(f"/v1/jobs/{job_id}/results", headers=auth).json()
    assert partial["status"] == "generating"
    jobs.finish_generation(job_id)

    response = client.get(f"/v1/jobs/{job_id}/results", headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert body["job_id"] == str(job_id)
    assert body["status"] == "completed"
    assert [r["task"] for r in body["results"]] == ["summary", "diary", "action_items"]
    summary, diary, actions = body["results"]
    assert summary["provider"] == "local"
    assert summary["model"] == "echo-1"
    assert summary["output"] == "summary output"
    assert summary["output_json"] is None
    assert summary["usage"] == {
        "tokens_in": 1200,
        "tokens_out": 300,
        "cost_usd": 0.001234,
        "latency_ms": 42,
    }
    assert summary["cached"] is False
    assert diary["cached"] is True
    assert actions["output_json"] == {"items": ["action_items"]}
    assert body["totals"] == {"tokens_in": 3000, "tokens_out": 500, "cost_usd": 0.011335,
                              "calls": 2, "failed_calls": 1}  # fmt: skip
    failed, paid = body["calls"]
    assert (failed["outcome"], failed["error"], failed["usage"]["cost_usd"]) == (
        "overloaded", "it broke", 0.0)  # fmt: skip
    assert (paid["deployment"], paid["provider"], paid["usage"]["cost_usd"]) == (
        "gpt", "openai", 0.001234)  # fmt: skip


def test_results_of_a_job_without_tasks_are_empty(
    client: TestClient, jobs: JobMaker, auth: dict[str, str]
) -> None:
    (job_id,) = jobs.queued()
    body = client.get(f"/v1/jobs/{job_id}/results", headers=auth).json()
    assert body["results"] == []
    assert body["status"] == "queued"
    assert body["totals"] == {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "calls": 0,
                              "failed_calls": 0}  # fmt: skip
    assert body["calls"] == []


def test_openapi_documents_errors_and_transcript_media_types(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    error_ref = "#/components/schemas/ErrorBody"
    job = paths["/v1/jobs/{job_id}"]["get"]["responses"]
    assert job["404"]["content"]["application/json"]["schema"]["$ref"] == error_ref
    assert "401" in job
    transcript = paths["/v1/jobs/{job_id}/transcript"]["get"]
    assert {"409", "404", "401"} <= set(transcript["responses"])
    assert {"text/vtt", "application/x-subrip", "text/plain"} <= set(
        transcript["responses"]["200"]["content"]
    )
    listing = paths["/v1/jobs"]["get"]
    assert "400" in listing["responses"]
    assert {p["name"] for p in listing["parameters"]} == {"status", "limit", "cursor"}
