"""Give the heap's free pages back to the kernel after a long job (glibc's malloc).

glibc serves allocations above its mmap threshold with their own memory maps, which `free`
returns at once. The threshold starts at 128 KiB but is dynamic: each time a mapped block is
freed, glibc raises it to that block's size, up to 32 MiB. After one long recording, the
many-megabyte arrays of the next jobs (samples, chunks, log-Mel features) come from the
heap, and `free` rarely shrinks the heap. Measured with the 5-minute and then the 1-hour
recording in one process: 552 MiB stayed resident after the first job and the second peaked
at 1422 MiB; trimming after each job, 236 MiB and 1180 MiB (a raw faster-whisper process
on the 1-hour file alone: 1148 MiB).

Fixing the threshold instead (`mallopt(M_MMAP_THRESHOLD)`) kept memory as low but made
decoding 35 to 55 % slower: CTranslate2's buffers then became a fresh memory map, and page
faults, on every call. `malloc_trim` costs tens of milliseconds (the pages it returns fault
back in later), so the worker calls it only after jobs longer than a minute (tasks.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    return getattr(ctypes.CDLL(name), "malloc_trim", None)  # musl and others have none


def return_freed_memory() -> bool:
    """Release the heap's free pages to the kernel; False where malloc is not glibc's."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
