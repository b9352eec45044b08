"""Reference GE2E embeddings from the original resemblyzer + torch + librosa, for the numpy port.

    uv venv /tmp/ge2e-ref --python 3.11
    uv pip install --python /tmp/ge2e-ref/bin/python resemblyzer torch librosa \\
        "setuptools<70" faster-whisper==1.2.1 av==18.1.0
    /tmp/ge2e-ref/bin/python scripts/ge2e_reference.py

It needs that throwaway venv (torch is over a gigabyte and never enters the project's lock);
the project's own environment cannot run it. resemblyzer imports `webrtcvad` 2.0.10, which
imports `pkg_resources`: hence the old setuptools. Audio is decoded with faster-whisper's
`decode_audio` (same PyAV version as the project) so that both sides see the same samples.

It writes tests/services/transcription_worker/data/ge2e_reference.npz: for a few clips of the
committed samples, the clip's mel spectrogram (first clip only), the embeddings of its
1.6-second partials every 40 frames, a digest of the decoded clip (to tell decoder drift from
a model mismatch), and resemblyzer's `embed_utterance` of a whole recording. The clips are
raw audio: `preprocess_wav` trims silences and is never used for diarization.

The mel is librosa's with `pad_mode="reflect"`: the weights date from resemblyzer 0.1.1
(2019, librosa >= 0.6.1), when reflection was librosa's default; librosa 0.9 made zero
padding the default. Only the first and last two frames of a clip depend on it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "services" / "transcription_worker" / "data" / "ge2e_reference.npz"
RATE = 16_000
STEP_FRAMES = 40  # one partial every 0.4 s
PARTIAL_FRAMES = 160
# (file, start s, seconds): speech in both recordings, one clip starting in leading silence.
CLIPS = (("meeting.ogg", 0.0, 4.0), ("meeting.ogg", 17.3, 3.2), ("voice_note.ogg", 2.5, 4.4))
UTTERANCE = "voice_note.ogg"


def main() -> None:
    """Compute and store the reference embeddings."""
    import librosa  # type: ignore[import-not-found]
    import resemblyzer.audio  # type: ignore[import-untyped, unused-ignore]
    import torch  # type: ignore[import-not-found]
    from faster_whisper import decode_audio
    from resemblyzer import VoiceEncoder  # type: ignore[import-untyped, unused-ignore]

    encoder = VoiceEncoder("cpu", verbose=False)
    encoder.eval()

    def mel_of(wav: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        # resemblyzer.audio.wav_to_mel_spectrogram, with the padding its weights were made with
        frames = librosa.feature.melspectrogram(
            y=wav, sr=RATE, n_fft=400, hop_length=160, n_mels=40, pad_mode="reflect"
        )
        return np.asarray(frames.astype(np.float32).T)

    resemblyzer.audio.wav_to_mel_spectrogram = mel_of  # embed_utterance uses it too

    out: dict[str, Any] = {}
    names, starts, seconds, digests, counts, embeddings = [], [], [], [], [], []
    for index, (name, start, length) in enumerate(CLIPS):
        pcm = decode_audio(str(ROOT / "samples" / name), sampling_rate=RATE)
        clip = pcm[int(start * RATE) : int(start * RATE) + int(length * RATE)]
        mel = mel_of(clip)
        partials = np.stack(
            [mel[i : i + PARTIAL_FRAMES] for i in range(0, len(mel) - PARTIAL_FRAMES + 1, 40)]
        )
        with torch.no_grad():
            embeds = encoder(torch.from_numpy(partials)).numpy()
        if index == 0:
            out["mel"] = mel
        names.append(name)
        starts.append(start)
        seconds.append(length)
        digests.append(hashlib.sha256(clip.astype(np.float32).tobytes()).hexdigest())
        counts.append(len(embeds))
        embeddings.append(embeds)
    # resemblyzer's utterance embedding of raw audio (its default rate and coverage)
    whole = decode_audio(str(ROOT / "samples" / UTTERANCE), sampling_rate=RATE)
    out["utterance"] = encoder.embed_utterance(whole).astype(np.float32)
    out["utterance_file"] = np.array(UTTERANCE)
    out.update(
        files=np.array(names),
        starts=np.array(starts),
        seconds=np.array(seconds),
        digests=np.array(digests),
        counts=np.array(counts),
        embeddings=np.concatenate(embeddings).astype(np.float32),
        versions=np.array(
            [f"torch {torch.__version__}", f"librosa {librosa.__version__}", "resemblyzer 0.1.4"]
        ),
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {sum(counts)} partial embeddings)")


if __name__ == "__main__":
    main()
