"""Freed audio buffers go back to the kernel when the worker trims the heap (malloc_trim)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from transcription_worker.memory import return_freed_memory

# One big array raises glibc's dynamic mmap threshold; then 8 MiB arrays (a few minutes of
# samples each) come from the heap. All but the last are freed: the heap keeps their pages
# unless they are trimmed. Prints the anonymous RSS growth in MiB.
PROGRAM = """
import sys
import numpy as np
from transcription_worker.memory import return_freed_memory

def anon_mib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

big = np.ones(24 * 2**20 // 8)
del big
before = anon_mib()
arrays = [np.ones(8 * 2**20 // 8) for _ in range(24)]
last = arrays.pop()
del arrays
if sys.argv[1] == "trimmed":
    assert return_freed_memory()
print(round(anon_mib() - before))
"""


def _growth(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], check=True,
                         capture_output=True, text=True)  # fmt: skip
    return int(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc on Linux")
def test_freed_arrays_leave_the_resident_set() -> None:
    assert return_freed_memory()
    # 24 arrays of 8 MiB were made and 23 freed: trimmed, only the live one stays resident.
    assert _growth("trimmed") < 24
    # Without the fix the freed ones stay in the heap (the behaviour being corrected).
    assert _growth("default") > 120
