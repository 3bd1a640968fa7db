"""Wall and CPU time of one piece of work, and the summaries the report prints."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured run: wall seconds and CPU seconds of the whole process (all threads)."""

    wall_s: float
    cpu_s: float


def timed(fn: Callable[[], T]) -> tuple[T, Sample]:
    """Run `fn` once; its result and how long it took."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, Sample(time.perf_counter() - wall, time.process_time() - cpu)


def median_ms(samples: Sequence[Sample]) -> float:
    """Median wall time in milliseconds."""
    return statistics.median(s.wall_s for s in samples) * 1000


def median_cpu_ms(samples: Sequence[Sample]) -> float:
    """Median CPU time in milliseconds."""
    return statistics.median(s.cpu_s for s in samples) * 1000


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
