"""The GE2E encoder's input: a 40-channel power mel spectrogram, as resemblyzer computes it.

resemblyzer's `audio.wav_to_mel_spectrogram` is `librosa.feature.melspectrogram(y, sr=16000,
n_fft=400, hop_length=160, n_mels=40)`, transposed to (frames, 40): a power spectrogram
(|STFT|^2, not log) of centred frames under a periodic Hann window, times librosa's default
Slaney mel filterbank (Slaney's mel scale, `norm="slaney"` area normalisation). This module
mirrors `librosa.stft` + `librosa.filters.mel` in a few lines of numpy, because librosa (and
the numba/scipy it brings) is too heavy to install for one filterbank.

Padding: the weights date from resemblyzer 0.1.1 (2019, librosa >= 0.6.1), when centred
frames were padded by reflection; librosa 0.9 switched its default to zeros. We reflect, as
the weights were made; only the first and last two frames of a clip depend on it.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

from transcription_worker.decode import SAMPLE_RATE

N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
_CHUNK_FRAMES = 4096  # frames transformed at once: bounds memory on long recordings


def hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The inverse of `hz_to_mel`."""
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@cache
def mel_filterbank(
    sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS
) -> npt.NDArray[np.float32]:
    """librosa.filters.mel(sr, n_fft, n_mels): triangles on the mel scale, area-normalised."""
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = mel_to_hz(
        np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(sr / 2)), n_mels + 2)
    )
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    result = weights.astype(np.float32)
    result.flags.writeable = False
    return result


@cache
def _hann(n: int) -> npt.NDArray[np.float64]:
    """The periodic Hann window (scipy's `get_window("hann", n)`, what librosa uses)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def _reflected(samples: npt.NDArray[np.float32], start: int, stop: int) -> npt.NDArray[np.float64]:
    """`np.pad(samples, N_FFT // 2, mode="reflect")[start:stop]`, without padding it all."""
    pad, n = N_FFT // 2, len(samples)
    if n <= pad:  # shorter than the padding: numpy reflects back and forth, let it
        return np.pad(samples.astype(np.float64), pad, mode="reflect")[start:stop]
    first, last = start - pad, stop - pad
    if first >= 0 and last <= n:
        return samples[first:last].astype(np.float64)
    index = np.abs(np.arange(first, last))  # reflect about sample 0
    index = np.where(index >= n, 2 * (n - 1) - index, index)  # and about the last sample
    return samples[index].astype(np.float64)


def mel_spectrogram(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(1 + len // 160, 40) float32 power mel frames of 16 kHz samples, frame i centred at 160 i.

    Frames are transformed a few thousand at a time: an hour of audio needs its 58 MB of
    output, not gigabytes of framed float64 copies.
    """
    samples = np.asarray(samples, dtype=np.float32)
    n_frames = 1 + len(samples) // HOP
    out = np.zeros((n_frames, N_MELS), np.float32)
    if len(samples) == 0:
        return out
    window = _hann(N_FFT)
    bank = mel_filterbank().astype(np.float64).T
    for first in range(0, n_frames, _CHUNK_FRAMES):
        count = min(_CHUNK_FRAMES, n_frames - first)
        piece = _reflected(samples, first * HOP, (first + count - 1) * HOP + N_FFT)
        frames = np.lib.stride_tricks.sliding_window_view(piece, N_FFT)[::HOP]
        spectrum = np.fft.rfft(frames * window, axis=1)
        out[first : first + count] = (spectrum.real**2 + spectrum.imag**2) @ bank
    return out
