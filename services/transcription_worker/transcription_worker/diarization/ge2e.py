"""resemblyzer's GE2E speaker encoder (VoiceEncoder) in numpy: 256-d voice embeddings, no torch.

The model: a 3-layer LSTM (40 mel channels in, hidden 256), whose last layer's final hidden
state goes through a 256x256 linear layer, a ReLU and an L2 normalisation. It embeds
partials of 160 mel frames (1.6 s). The weights are the `resemblyzer` wheel's
`pretrained.pt` (Apache-2.0), read by `checkpoint.py`.

Why numpy: torch is a gigabyte to install for one small LSTM. The forward pass here is
batched over windows (time-major: time x windows x features): each layer's input
projection is one matrix product for all time steps, then every step is one (windows x 256)
by (256 x 1024) product and one `tanh` over all four gates (the sigmoid gates' rows are
pre-scaled by 1/2, since sigmoid(x) = (1 + tanh(x/2)) / 2). It matches torch within 1e-6
(tests/services/transcription_worker/test_diarization.py). `lstm_onnx.py` runs the same
weights through onnxruntime's LSTM kernel: on one thread both take 5.7 ms a window (the
matrix products dominate), on two cores onnxruntime embeds about 1.4x more windows a second
(numpy runs the gate arithmetic on one thread), so it is the default and this one the
reference and fallback (`OfflineOptions(runtime="numpy")`).
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from transcription_worker.decode import SAMPLE_RATE
from transcription_worker.diarization.checkpoint import load_legacy_checkpoint
from transcription_worker.diarization.mel import HOP, mel_spectrogram

PARTIAL_FRAMES = 160  # 1.6 s of 10 ms frames: what the encoder was trained on
EMBEDDING_SIZE = 256
HIDDEN = 256
LAYERS = 3
Floats = npt.NDArray[np.float32]
Runtime = Literal["numpy", "onnx"]


def default_weights_path() -> Path:
    """`pretrained.pt` of the installed resemblyzer (located without importing it: torch)."""
    path = Path(str(importlib.metadata.distribution("resemblyzer").locate_file(
        "resemblyzer/pretrained.pt")))  # fmt: skip
    if not path.is_file():
        raise FileNotFoundError(f"GE2E weights not found at {path} (is resemblyzer installed?)")
    return path


@dataclass(frozen=True)
class LstmLayer:
    """One LSTM layer's weights in torch's layout: gates stacked i, f, g, o (4 x hidden rows)."""

    weight_ih: Floats  # (4H, input)
    weight_hh: Floats  # (4H, H)
    bias: Floats  # (4H,): torch's bias_ih + bias_hh


@dataclass(frozen=True)
class GE2EWeights:
    """The encoder's parameters as float32 arrays."""

    layers: tuple[LstmLayer, ...]
    linear_weight: Floats  # (256, 256)
    linear_bias: Floats  # (256,)

    @classmethod
    def load(cls, path: Path | None = None) -> GE2EWeights:
        """Read resemblyzer's checkpoint (its `model_state`; the optimizer state is ignored)."""
        state = load_legacy_checkpoint(path or default_weights_path())["model_state"]
        layers = tuple(
            LstmLayer(
                state[f"lstm.weight_ih_l{n}"],
                state[f"lstm.weight_hh_l{n}"],
                state[f"lstm.bias_ih_l{n}"] + state[f"lstm.bias_hh_l{n}"],
            )
            for n in range(LAYERS)
        )
        return cls(layers, state["linear.weight"], state["linear.bias"])


class LstmRuntime(Protocol):
    """Runs the 3-layer LSTM: time-major mels (T, B, 40) to the last layer's final h (B, 256)."""

    def final_hidden(self, mels: Floats) -> Floats:
        """The last layer's hidden state after the last frame."""
        ...


class NumpyLstm:
    """The LSTM forward pass in numpy, batched over windows."""

    def __init__(self, weights: GE2EWeights) -> None:
        # Rows of the sigmoid gates (i, f, o) scaled by 1/2: one tanh then serves all gates.
        scale = np.full(4 * HIDDEN, 0.5, np.float32)
        scale[2 * HIDDEN : 3 * HIDDEN] = 1.0  # g is a tanh gate
        self.layers = [
            (
                np.ascontiguousarray((layer.weight_ih * scale[:, None]).T),
                np.ascontiguousarray((layer.weight_hh * scale[:, None]).T),
                layer.bias * scale,
            )
            for layer in weights.layers
        ]

    def final_hidden(self, mels: Floats) -> Floats:
        """(T, B, 40) time-major mels to (B, 256)."""
        steps, batch, _ = mels.shape
        x = mels
        gates = np.empty((batch, 4 * HIDDEN), np.float32)
        for index, (w_ih, w_hh, bias) in enumerate(self.layers):
            last = index == len(self.layers) - 1
            projected = (x.reshape(steps * batch, -1) @ w_ih).reshape(steps, batch, 4 * HIDDEN)
            projected += bias
            outputs = None if last else np.empty((steps, batch, HIDDEN), np.float32)
            h = np.zeros((batch, HIDDEN), np.float32)
            c = np.zeros((batch, HIDDEN), np.float32)
            for t in range(steps):
                np.matmul(h, w_hh, out=gates)
                gates += projected[t]
                np.tanh(gates, out=gates)
                sig = gates[:, : 2 * HIDDEN]  # i and f: sigmoid = (1 + tanh(x/2)) / 2
                sig += 1.0
                sig *= 0.5
                out_gate = gates[:, 3 * HIDDEN :]
                out_gate += 1.0
                out_gate *= 0.5
                c *= gates[:, HIDDEN : 2 * HIDDEN]
                c += gates[:, :HIDDEN] * gates[:, 2 * HIDDEN : 3 * HIDDEN]
                np.tanh(c, out=h)
                h *= out_gate
                if outputs is not None:
                    outputs[t] = h
            if outputs is not None:
                x = outputs
        return h


class GE2EEncoder:
    """Speaker embeddings of 1.6 s windows of a recording's mel frames, or of a whole clip."""

    def __init__(self, weights: GE2EWeights, runtime: Runtime = "numpy", batch: int = 128) -> None:
        self.weights = weights
        self.batch = batch  # windows per LSTM call: enough for efficient matrix products
        self.lstm: LstmRuntime
        if runtime == "onnx":
            from transcription_worker.diarization.lstm_onnx import OnnxLstm

            self.lstm = OnnxLstm(weights)
        else:
            self.lstm = NumpyLstm(weights)

    def embed_windows(self, mel: Floats, starts: npt.NDArray[np.intp]) -> Floats:
        """Embeddings of the 160-frame windows of `mel` beginning at frames `starts`."""
        out = np.empty((len(starts), EMBEDDING_SIZE), np.float32)
        offsets = np.arange(PARTIAL_FRAMES)
        for first in range(0, len(starts), self.batch):
            chunk = starts[first : first + self.batch]
            # time-major gather: (160, B, 40) without materialising a batch-major copy
            mels = mel[offsets[:, None] + chunk[None, :]]
            out[first : first + len(chunk)] = self._head(self.lstm.final_hidden(mels))
        return out

    def voice_print(self, samples: Floats, rate: float = 1.3, min_coverage: float = 0.75) -> Floats:
        """One embedding of a clip: resemblyzer's `embed_utterance` (on raw audio).

        Partials `rate` per second cover the clip (the last one zero-padded if it holds at
        least `min_coverage` of its frames); their mean embedding is re-normalised.
        """
        n_frames = int(np.ceil((len(samples) + 1) / HOP))
        step = int(np.round((SAMPLE_RATE / rate) / HOP))
        starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
        coverage = (len(samples) - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
        if coverage < min_coverage and len(starts) > 1:
            starts.pop()
        needed = (starts[-1] + PARTIAL_FRAMES) * HOP
        padded = np.pad(samples, (0, max(0, needed - len(samples))))
        mel = mel_spectrogram(padded.astype(np.float32))
        partials = self.embed_windows(mel, np.array(starts, dtype=np.intp))
        mean = partials.mean(axis=0)
        return np.asarray(mean / max(float(np.linalg.norm(mean)), 1e-12), dtype=np.float32)

    def _head(self, hidden: Floats) -> Floats:
        """Linear, ReLU, L2 normalisation of the final hidden states."""
        raw = np.maximum(hidden @ self.weights.linear_weight.T + self.weights.linear_bias, 0.0)
        norm = np.linalg.norm(raw, axis=1, keepdims=True)
        return np.asarray(raw / np.maximum(norm, 1e-12), dtype=np.float32)
