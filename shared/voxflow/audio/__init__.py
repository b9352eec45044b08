"""Probe and validate uploaded audio (container, codec, duration), optionally isolated."""

from voxflow.audio.isolated_probe import probe_isolated, shutdown_probe_pool
from voxflow.audio.probe import AudioInfo, AudioRejectedError, probe_file

__all__ = [
    "AudioInfo",
    "AudioRejectedError",
    "probe_file",
    "probe_isolated",
    "shutdown_probe_pool",
]
