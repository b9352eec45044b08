"""Line breaking for SRT and WebVTT cues: fewest lines and cues, evened out in length.

Words are wrapped at ``limit`` characters on spaces (a word is never split; a word
longer than the limit gets a line of its own).  Both the cues of a segment and the
lines of a cue are balanced, so a short last line or cue is avoided.
"""

from __future__ import annotations

import math


def cue_bounds(lengths: list[int], limit: int, max_lines: int) -> list[tuple[int, int]]:
    """Word ranges of the fewest cues of at most ``max_lines`` lines, evened out."""
    reach = _reach(lengths, limit, max_lines)
    parts, first = 0, 0
    while first < len(lengths):
        first, parts = reach[first], parts + 1
    return _balanced(lengths, parts, reach)


def wrap(words: list[str], limit: int) -> tuple[str, ...]:
    """The words on the fewest lines of at most ``limit`` characters, evened out."""
    lengths = [len(word) for word in words]
    parts = _greedy_lines(lengths, limit)
    runs = _balanced(lengths, parts, _reach(lengths, limit, 1))
    return tuple(" ".join(words[first:stop]) for first, stop in runs)


def _greedy_lines(lengths: list[int], limit: int) -> int:
    """Fewest lines holding words of these lengths (first fit is optimal here)."""
    lines, current = 0, 0
    for length in lengths:
        if lines and current + 1 + length <= limit:
            current += 1 + length
        else:
            lines, current = lines + 1, length
    return lines


def _reach(lengths: list[int], limit: int, max_lines: int) -> list[int]:
    """For each word i, the end j of the longest run ``i:j`` that fits in ``max_lines``."""
    reach: list[int] = []
    for first in range(len(lengths)):
        lines, current, stop = 1, lengths[first], first + 1
        while stop < len(lengths):
            if current + 1 + lengths[stop] <= limit:
                current += 1 + lengths[stop]
            elif lines < max_lines:
                lines, current = lines + 1, lengths[stop]
            else:
                break
            stop += 1
        reach.append(stop)
    return reach


def _balanced(lengths: list[int], parts: int, reach: list[int]) -> list[tuple[int, int]]:
    """Split the words into ``parts`` runs, run ``i:j`` allowed when ``j <= reach[i]``.

    ``parts`` must be the fewest runs possible.  Minimises the sum of squared run
    widths (so the runs come out even).  Only run ends from which the rest still fits
    in the runs left are explored, which keeps long segments fast.
    """
    count = len(lengths)
    prefix = [0]
    for length in lengths:
        prefix.append(prefix[-1] + length)
    # need[j]: fewest runs for the words from j on (taking the longest run is optimal).
    need = [0] * (count + 1)
    for first in range(count - 1, -1, -1):
        need[first] = 1 + need[reach[first]]
    # For each run count, the least cost of each reachable run end and that run's start.
    active: dict[int, float] = {0: 0.0}
    starts: list[dict[int, int]] = []
    for k in range(1, parts + 1):
        best: dict[int, float] = {}
        start_of: dict[int, int] = {}
        for first, cost_so_far in active.items():
            for stop in range(first + 1, reach[first] + 1):
                if need[stop] > parts - k:
                    continue
                width = prefix[stop] - prefix[first] + (stop - first - 1)
                cost = cost_so_far + width * width
                if cost < best.get(stop, math.inf):
                    best[stop], start_of[stop] = cost, first
        active = best
        starts.append(start_of)
    runs: list[tuple[int, int]] = []
    stop = count
    for start_of in reversed(starts):
        first = start_of[stop]
        runs.append((first, stop))
        stop = first
    return runs[::-1]
