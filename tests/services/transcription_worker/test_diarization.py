"""The offline diarizer on committed conversations, its numpy GE2E against torch, the backends.

The conversations in data/diarization/ (1-4 text-to-speech voices, RTTM ground truth) were
written by scripts/benchmarks/diarization_corpus.py `test-set`; data/ge2e_reference.npz by
scripts/ge2e_reference.py with the original resemblyzer, torch and librosa.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import itertools
import json
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faster_whisper import decode_audio
from pyannote.core import Annotation, Segment, Timeline  # type: ignore[import-untyped, unused-ignore]
from pyannote.metrics.diarization import (  # type: ignore[import-untyped, unused-ignore]
    DiarizationErrorRate,
)

from tests.conftest import ROOT
from transcription_worker.diarization import name_speakers
from transcription_worker.diarization.base import Diarization, Turn, speaker_bounds
from transcription_worker.diarization.checkpoint import load_legacy_checkpoint
from transcription_worker.diarization.clustering import spectral_clusters
from transcription_worker.diarization.ge2e import GE2EEncoder, GE2EWeights
from transcription_worker.diarization.mel import mel_spectrogram
from transcription_worker.diarization.offline import OfflineDiarizer, OfflineOptions
from transcription_worker.diarization.pyannote_backend import (
    PyannoteDiarizer,
    PyannoteUnavailableError,
)

DATA = Path(__file__).parent / "data"
CONVERSATIONS = sorted((DATA / "diarization").glob("*.ogg"))
RATE = 16_000
COLLAR = 0.5  # pyannote's collar is the total width: +-0.25 s


def _reference(path: Path) -> Annotation:
    annotation = Annotation(uri=path.stem)
    for line in path.with_suffix(".rttm").read_text().splitlines():
        fields = line.split()
        start, length = float(fields[3]), float(fields[4])
        annotation[Segment(start, start + length)] = fields[7]
    return annotation


def _hypothesis(result: Diarization) -> Annotation:
    annotation = Annotation()
    for turn in result.turns:
        annotation[Segment(turn.start, turn.end)] = turn.speaker
    return annotation


def _voices(path: Path) -> list[str]:
    voices: list[str] = json.loads(path.with_suffix(".json").read_text())["voices"]
    return voices


@pytest.fixture(scope="module")
def audio() -> dict[str, np.ndarray[Any, Any]]:
    """Every committed conversation, decoded."""
    return {p.stem: decode_audio(str(p), sampling_rate=RATE) for p in CONVERSATIONS}


@pytest.fixture(scope="module")
def diarizer() -> OfflineDiarizer:
    """The default offline diarizer (its encoder is shared by the process)."""
    return OfflineDiarizer()


@pytest.fixture(scope="module")
def results(
    diarizer: OfflineDiarizer, audio: dict[str, np.ndarray[Any, Any]]
) -> dict[str, Diarization]:
    """Each conversation diarized once, without a speaker count."""
    return {name: diarizer.diarize(pcm) for name, pcm in audio.items()}


@pytest.mark.parametrize("runtime", ["numpy", "onnx"])
def test_encoder_matches_torch(runtime: str) -> None:
    """Mel, partial embeddings and utterance embedding match resemblyzer's (torch, librosa)."""
    reference = np.load(DATA / "ge2e_reference.npz")
    encoder = GE2EEncoder(GE2EWeights.load(), runtime)  # type: ignore[arg-type]
    embeddings = []
    for index, (name, start, seconds) in enumerate(
        zip(reference["files"], reference["starts"], reference["seconds"], strict=True)
    ):
        pcm = decode_audio(str(ROOT / "samples" / str(name)), sampling_rate=RATE)
        clip = pcm[int(start * RATE) : int(start * RATE) + int(seconds * RATE)]
        digest = hashlib.sha256(clip.astype(np.float32).tobytes()).hexdigest()
        assert digest == reference["digests"][index], "the decoder's output changed"
        mel = mel_spectrogram(clip)
        if index == 0:
            scale = float(np.abs(reference["mel"]).max())
            assert np.abs(mel - reference["mel"]).max() <= 1e-6 * scale
        starts = np.arange(0, len(mel) - 160 + 1, 40)
        embeddings.append(encoder.embed_windows(mel, starts))
    assert np.abs(np.concatenate(embeddings) - reference["embeddings"]).max() < 1e-5
    whole = decode_audio(str(ROOT / "samples" / str(reference["utterance_file"])), RATE)
    assert np.abs(encoder.voice_print(whole) - reference["utterance"]).max() < 1e-5


def test_checkpoint_reader_refuses_other_globals(tmp_path: Path) -> None:
    """Only the few classes a float checkpoint needs are resolved: nothing can run code."""
    path = tmp_path / "evil.pt"
    with path.open("wb") as handle:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, handle)
        pickle.dump(io.StringIO("payload"), handle)  # a global outside the allow-list
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_legacy_checkpoint(path)


def test_accuracy_on_committed_conversations(
    results: dict[str, Diarization], audio: dict[str, np.ndarray[Any, Any]]
) -> None:
    """Pooled DER (+-0.25 s) at most 10%, the right speaker count on at least 90% of files."""
    metric = DiarizationErrorRate(collar=COLLAR)
    counts = {}
    for path in CONVERSATIONS:
        reference = _reference(path)
        whole = Timeline([Segment(0.0, len(audio[path.stem]) / RATE)])
        metric(reference, _hypothesis(results[path.stem]), uem=whole)
        counts[path.stem] = (results[path.stem].speakers, len(reference.labels()))
    right = sum(found == true for found, true in counts.values())
    assert abs(metric) <= 0.10, f"pooled DER {abs(metric):.2%}"
    assert right / len(CONVERSATIONS) >= 0.9, f"(found, true) speakers: {counts}"


def test_turns_are_sorted_merged_and_numbered_by_appearance(
    results: dict[str, Diarization],
) -> None:
    """Sorted, non-overlapping turns; touching same-speaker turns joined; A, B, C in order."""
    for result in results.values():
        turns = result.turns
        assert all(t.start < t.end for t in turns)
        for before, after in itertools.pairwise(turns):
            assert before.end <= after.start
            assert not (before.speaker == after.speaker and before.end == after.start)
        first_seen = list(dict.fromkeys(t.speaker for t in turns))
        assert first_seen == list(range(result.speakers))
        assert result.centroids.shape == (result.speakers, 256)
        assert np.allclose(np.linalg.norm(result.centroids, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "speakers"), [("conv3_3spk", 2), ("conv1_2spk", 3), ("conv4_4spk", 1)]
)
def test_exact_speaker_count_is_honoured(
    diarizer: OfflineDiarizer,
    audio: dict[str, np.ndarray[Any, Any]],
    name: str,
    speakers: int,
) -> None:
    """`speakers=` is the count returned, even when the voices say otherwise."""
    assert diarizer.diarize(audio[name], speakers=speakers).speakers == speakers


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("conv4_4spk", None, 2), ("conv0_1spk", 2, None), ("conv2_2spk", 3, 4)],
)
def test_speaker_bounds_are_honoured(
    diarizer: OfflineDiarizer,
    audio: dict[str, np.ndarray[Any, Any]],
    name: str,
    low: int | None,
    high: int | None,
) -> None:
    """The estimate stays within min_speakers..max_speakers."""
    found = diarizer.diarize(audio[name], min_speakers=low, max_speakers=high).speakers
    assert (low or 1) <= found <= (high or 8)


def test_bad_bounds_are_refused() -> None:
    """Counts below one, or a minimum above the maximum, are the caller's mistake."""
    with pytest.raises(ValueError, match="at least 1"):
        speaker_bounds(0, None, None, 8)
    with pytest.raises(ValueError, match="above"):
        speaker_bounds(None, 4, 2, 8)


def test_silence_and_noise_give_no_turns(diarizer: OfflineDiarizer) -> None:
    """No speech, no speakers."""
    noise = np.random.default_rng(0).normal(0, 1e-3, 10 * RATE).astype(np.float32)
    for samples in (np.zeros(10 * RATE, np.float32), noise, np.zeros(100, np.float32)):
        result = diarizer.diarize(samples)
        assert result.turns == []
        assert result.speakers == 0


def test_long_recording_clusters_a_bounded_number_of_windows(
    audio: dict[str, np.ndarray[Any, Any]],
) -> None:
    """20 minutes of the conversations end to end: every window embedded, 400 clustered.

    (A window a second rather than the default 0.6 s keeps the test short; the bound is
    what it checks.)
    """
    pcm = np.concatenate(list(audio.values()))
    long = np.tile(pcm, int(np.ceil(20 * 60 * RATE / len(pcm))))[: 20 * 60 * RATE]
    diarizer = OfflineDiarizer(OfflineOptions(step_seconds=1.0, max_cluster_windows=400))
    result, stats = diarizer.diarize_with_stats(long)
    assert stats.windows > 1000
    assert stats.clustered == 400
    assert result.turns[-1].end <= 20 * 60
    voices = {voice for path in CONVERSATIONS for voice in _voices(path)}
    assert result.speakers == len(voices)  # the same voice is one speaker across files


def test_voice_prints_name_the_speakers(
    diarizer: OfflineDiarizer,
    audio: dict[str, np.ndarray[Any, Any]],
    results: dict[str, Diarization],
) -> None:
    """Reference clips from other conversations name the clusters of a 3-voice one."""
    known: dict[str, np.ndarray[Any, Any]] = {}
    for path in CONVERSATIONS:
        if path.stem == "conv3_3spk":
            continue
        for index, voice in enumerate(_voices(path)):
            if voice in _voices(CONVERSATIONS[3]) and voice not in known:
                speech = _reference(path).label_timeline(f"spk{index}")
                clip = np.concatenate([audio[path.stem][int(s.start * RATE) : int(s.end * RATE)]
                                       for s in speech][:4])  # fmt: skip
                known[voice] = diarizer.voice_print(clip)
    target = CONVERSATIONS[3]
    assert target.stem == "conv3_3spk"
    assert len(known) == 3
    names = name_speakers(results[target.stem], known)
    reference, hypothesis = _reference(target), _hypothesis(results[target.stem])
    for speaker, voice in names.items():
        mine = hypothesis.label_timeline(speaker)
        overlap = {
            label: mine.crop(reference.label_timeline(label)).duration()
            for label in reference.labels()
        }
        truth = _voices(target)[int(max(overlap, key=overlap.__getitem__).removeprefix("spk"))]
        assert voice == truth
    assert len(names) == 3


def test_spectral_clusters_find_separated_groups() -> None:
    """Tight groups of unit vectors: the eigengap counts them, within the bounds given."""
    rng = np.random.default_rng(0)
    for k in (1, 2, 3, 4):
        centres = rng.normal(size=(k, 32))
        noisy = np.repeat(centres, 30, axis=0) + rng.normal(scale=0.15, size=(30 * k, 32))
        points = np.asarray(np.abs(noisy), dtype=np.float32)
        labels = spectral_clusters(points, 1, 8)
        assert len(set(labels.tolist())) == k
        assert len(set(spectral_clusters(points, 1, 1).tolist())) == 1
        assert len(set(spectral_clusters(points, 5, 6).tolist())) >= 5


def test_default_environment_has_no_torch() -> None:
    """resemblyzer's torch, librosa and webrtcvad stay out; the diarizer needs no scipy."""
    for module in ("torch", "librosa", "webrtcvad"):
        with pytest.raises(ImportError):
            importlib.import_module(module)
    code = (
        "import sys, numpy as np\n"
        "from transcription_worker.diarization.offline import OfflineDiarizer\n"
        "OfflineDiarizer().diarize(np.zeros(16000, np.float32))\n"
        "heavy = [m for m in ('scipy', 'sklearn', 'torch', 'resemblyzer') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_pyannote_backend_says_how_to_install_it(tmp_path: Path) -> None:
    """pyannote.audio is not installed here: the error names the install line."""
    with pytest.raises(PyannoteUnavailableError, match=r"pyannote\.audio>=4"):
        PyannoteDiarizer(tmp_path).diarize(np.zeros(RATE, np.float32))


class _FakeTensor:
    def __init__(self, array: np.ndarray[Any, Any]) -> None:
        self.array = array

    def unsqueeze(self, axis: int) -> _FakeTensor:
        return _FakeTensor(np.expand_dims(self.array, axis))

    def __getitem__(self, index: Any) -> _FakeTensor:
        return _FakeTensor(self.array[index])


def test_pyannote_backend_maps_the_pipeline_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waveform in memory, counts passed through, labels renumbered by first appearance."""
    calls: dict[str, Any] = {}
    annotation = Annotation()
    annotation[Segment(0.5, 2.0)] = "SPEAKER_01"
    annotation[Segment(2.2, 4.0)] = "SPEAKER_00"
    annotation[Segment(4.0, 5.0)] = "SPEAKER_01"

    class Pipeline:
        @classmethod
        def from_pretrained(cls, path: Path) -> Pipeline:
            calls["path"] = path
            calls["telemetry"] = os.environ.get("PYANNOTE_METRICS_ENABLED")
            return cls()

        def to(self, device: Any) -> Pipeline:
            return self

        def __call__(self, file: dict[str, Any], **counts: int) -> Any:
            calls.update(file=file, counts=counts)
            return types.SimpleNamespace(
                speaker_diarization=annotation,
                exclusive_speaker_diarization=annotation,
                speaker_embeddings=np.array([[0.0, 2.0], [3.0, 0.0]]),  # label order: 00, 01
            )

        def _embedding(self, waveform: _FakeTensor) -> np.ndarray[Any, Any]:
            calls["embedded"] = waveform.array.shape
            return np.array([[3.0, 4.0]])

    fake_audio = types.ModuleType("pyannote.audio")
    fake_audio.Pipeline = Pipeline  # type: ignore[attr-defined]
    fake_torch = types.SimpleNamespace(from_numpy=_FakeTensor, device=lambda name: name)
    monkeypatch.setitem(sys.modules, "pyannote.audio", fake_audio)
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.delenv("PYANNOTE_METRICS_ENABLED", raising=False)

    backend = PyannoteDiarizer(tmp_path)
    result = backend.diarize(np.zeros(6 * RATE, np.float32), min_speakers=1, max_speakers=3)
    assert calls["telemetry"] == "0"
    assert calls["path"] == tmp_path
    assert calls["counts"] == {"min_speakers": 1, "max_speakers": 3}
    assert calls["file"]["sample_rate"] == RATE
    assert calls["file"]["waveform"].array.shape == (1, 6 * RATE)
    assert result.turns == [Turn(0.5, 2.0, 0), Turn(2.2, 4.0, 1), Turn(4.0, 5.0, 0)]
    assert np.allclose(result.centroids, [[1.0, 0.0], [0.0, 1.0]])  # SPEAKER_01 first
    assert np.allclose(backend.voice_print(np.zeros(RATE, np.float32)), [0.6, 0.8])
    assert calls["embedded"] == (1, 1, RATE)
    backend.diarize(np.zeros(RATE, np.float32), speakers=2)
    assert calls["counts"] == {"num_speakers": 2}
