"""Probe and validate uploaded audio (container, codec, duration), in an isolated process.

PyAV can crash the process on a hostile file, so the API probes in a pool of child
processes (`isolated_pool`) that it restarts when one dies or hangs.
"""

from ingest_api.audio_probe.isolated_probe import probe_isolated, shutdown_probe_pool
from ingest_api.audio_probe.probe import AudioInfo, AudioRejectedError, probe_file

__all__ = [
    "AudioInfo",
    "AudioRejectedError",
    "probe_file",
    "probe_isolated",
    "shutdown_probe_pool",
]
