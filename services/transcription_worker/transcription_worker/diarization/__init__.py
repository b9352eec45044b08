"""Speaker diarization: who spoke when, by an offline GE2E engine or by pyannote.

`base` holds the protocol and result types; `offline.OfflineDiarizer` runs with what the
worker installs (numpy, onnxruntime, faster-whisper's Silero VAD, resemblyzer's weights);
`pyannote_backend.PyannoteDiarizer` needs pyannote.audio, installed separately with torch.
Importing this package loads neither model.
"""

from transcription_worker.diarization.base import Diarization, Diarizer, Turn, name_speakers

__all__ = ["Diarization", "Diarizer", "Turn", "name_speakers"]
