"""The GE2E encoder's LSTM as an onnxruntime graph built in memory from the numpy weights.

onnxruntime is already installed (faster-whisper runs Silero VAD with it); its CPU LSTM
kernel fuses the gate arithmetic that numpy does in separate passes. The graph is three
ONNX `LSTM` nodes, time-major (its CPU kernel rejects `layout=1`), each layer's output
squeezed into the next; the linear head stays in numpy.

The `onnx` package (the usual way to build a graph) is not installed and would only serve
here, so the few protobuf messages the graph needs are written by hand below: a protobuf
message is a list of (field number, wire type) keys followed by varints or length-prefixed
bytes, and the field numbers are those of onnx/onnx.proto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from transcription_worker.diarization.ge2e import Floats, GE2EWeights

_FLOAT, _INT64 = 1, 7  # TensorProto.DataType
_ATTR_INT = 2  # AttributeProto.AttributeType.INT
_OPSET = 17
_IR_VERSION = 8


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes | str) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(raw)) + raw


def _tensor(name: str, array: np.ndarray[Any, Any]) -> bytes:
    """TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9 (little-endian)."""
    kind = _INT64 if array.dtype == np.int64 else _FLOAT
    dtype = "<i8" if kind == _INT64 else "<f4"
    dims = b"".join(_int(1, d) for d in array.shape)
    raw = np.ascontiguousarray(array, dtype=dtype).tobytes()
    return dims + _int(2, kind) + _bytes(8, name) + _bytes(9, raw)


def _value_info(name: str, dims: tuple[int | str, ...]) -> bytes:
    """ValueInfoProto{name, TypeProto{tensor_type{elem_type FLOAT, shape{dim...}}}}."""
    shape = b"".join(_bytes(1, _bytes(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    tensor_type = _int(1, _FLOAT) + _bytes(2, shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def _node(op: str, inputs: list[str], outputs: list[str], **ints: int) -> bytes:
    """NodeProto: input = 1, output = 2, op_type = 4, attribute = 5 {name 1, i 3, type 20}."""
    attributes = b"".join(
        _bytes(5, _bytes(1, key) + _int(3, value) + _int(20, _ATTR_INT))
        for key, value in ints.items()
    )
    return (
        b"".join(_bytes(1, i) for i in inputs)
        + b"".join(_bytes(2, o) for o in outputs)
        + _bytes(4, op)
        + attributes
    )


def _onnx_gates(matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """torch stacks gates i, f, g, o; ONNX expects i, o, f, c (c being torch's g)."""
    i, f, g, o = np.split(matrix, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def lstm_model(weights: GE2EWeights) -> bytes:
    """A serialised ModelProto: mels (T, B, 40) -> hidden (1, B, 256), the last layer's h."""
    nodes, initializers = [], [_tensor("axis1", np.array([1], np.int64))]
    x = "mels"
    for n, layer in enumerate(weights.layers):
        hidden = layer.weight_hh.shape[1]
        bias = np.concatenate([_onnx_gates(layer.bias), np.zeros(4 * hidden, np.float32)])
        initializers += [
            _tensor(f"W{n}", _onnx_gates(layer.weight_ih)[None]),
            _tensor(f"R{n}", _onnx_gates(layer.weight_hh)[None]),
            _tensor(f"B{n}", bias[None]),
        ]
        last = n == len(weights.layers) - 1
        outputs = ["", "hidden"] if last else [f"Y{n}"]
        nodes.append(_node("LSTM", [x, f"W{n}", f"R{n}", f"B{n}"], outputs, hidden_size=hidden))
        if not last:  # Y is (T, directions=1, B, H): drop the direction axis
            nodes.append(_node("Squeeze", [f"Y{n}", "axis1"], [f"X{n + 1}"]))
            x = f"X{n + 1}"
    graph = (
        b"".join(_bytes(1, node) for node in nodes)
        + _bytes(2, "ge2e_lstm")
        + b"".join(_bytes(5, t) for t in initializers)
        + _bytes(11, _value_info("mels", ("time", "batch", 40)))
        + _bytes(12, _value_info("hidden", (1, "batch", weights.layers[-1].weight_hh.shape[1])))
    )
    opset = _bytes(1, "") + _int(2, _OPSET)
    return _int(1, _IR_VERSION) + _bytes(2, "voxflow") + _bytes(7, graph) + _bytes(8, opset)


class OnnxLstm:
    """`LstmRuntime` on onnxruntime's CPU LSTM kernel."""

    def __init__(self, weights: GE2EWeights, threads: int = 0) -> None:
        import onnxruntime  # type: ignore[import-untyped]

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False  # gives the activations back after each batch
        self.session = onnxruntime.InferenceSession(
            lstm_model(weights), options, providers=["CPUExecutionProvider"]
        )

    def final_hidden(self, mels: Floats) -> Floats:
        """(T, B, 40) time-major mels to (B, 256)."""
        (hidden,) = self.session.run(["hidden"], {"mels": np.ascontiguousarray(mels)})
        return np.asarray(hidden[0], dtype=np.float32)
