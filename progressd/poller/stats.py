"""The poller's statistics record and its bounded wake-latency histogram.

Telemetry reads ``Poller.statistics()`` (a frozen ``PollerStatistics``); nothing here is on the
per-handle hot path except ``WakeLatencyHistogram.record``, which the poller calls once per run of
handles sharing a due instant (all think-0 handles subscribed in one iteration share one).
"""

from __future__ import annotations

import msgspec

__all__ = ["PollerStatistics", "WakeLatencyHistogram"]

_SUB = 8  # sub-buckets per power of two: bucket bounds are within 12.5 % of the value
_SUB_BITS = 3
_MAX_BITS = 40  # 2**40 µs ≈ 12.7 days; longer latencies land in the top bucket
_BUCKETS = _SUB + (_MAX_BITS - _SUB_BITS) * _SUB + 1


def _index(us: int) -> int:
    if us < _SUB:
        return max(us, 0)
    bits = us.bit_length()
    if bits > _MAX_BITS:
        return _BUCKETS - 1
    shift = bits - _SUB_BITS - 1
    return _SUB + shift * _SUB + ((us >> shift) & (_SUB - 1))


def _upper_us(index: int) -> int:
    """The exclusive upper bound, in microseconds, of bucket ``index``."""
    if index < _SUB:
        return index + 1
    shift, sub = divmod(index - _SUB, _SUB)
    return (_SUB + sub + 1) << shift


class WakeLatencyHistogram:
    """A log-linear histogram of latencies: constant memory, ~12.5 % resolution.

    Values are recorded in whole microseconds; percentiles report the upper bound of the bucket
    holding the requested rank, so they never understate.
    """

    __slots__ = ("_counts", "_max", "_total")

    def __init__(self) -> None:
        self._counts = [0] * _BUCKETS
        self._total = 0
        self._max = 0.0

    def record(self, seconds: float, count: int = 1) -> None:
        self._counts[_index(int(seconds * 1_000_000))] += count
        self._total += count
        self._max = max(self._max, seconds)

    @property
    def max(self) -> float:
        """The largest latency recorded, exactly (seconds)."""
        return self._max

    @property
    def total(self) -> int:
        return self._total

    def percentile(self, fraction: float) -> float:
        """The latency (seconds) below which ``fraction`` of the recorded values fall; 0.0 when
        nothing was recorded."""
        if self._total == 0:
            return 0.0
        rank = max(1, int(fraction * self._total + 0.999999))
        seen = 0
        for index, count in enumerate(self._counts):
            seen += count
            if seen >= rank:
                return _upper_us(index) / 1_000_000
        return _upper_us(_BUCKETS - 1) / 1_000_000

    def buckets(self) -> tuple[tuple[float, int], ...]:
        """Non-empty buckets as ``(upper bound in seconds, count)``, ascending."""
        return tuple((_upper_us(i) / 1_000_000, n) for i, n in enumerate(self._counts) if n)

    def reset(self) -> None:
        self._counts = [0] * _BUCKETS
        self._total = 0
        self._max = 0.0


class PollerStatistics(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A snapshot of the poller's counters, for telemetry and benchmarks."""

    iterations: int
    """Poll iterations run (each with a fresh ready list)."""
    handles_run: int
    """Handles fired (callbacks called), over all iterations."""
    handles_per_iteration_mean: float
    handles_per_iteration_max: int
    iteration_seconds_mean: float
    """Wall time spent running one iteration (timer pops, handles, hooks)."""
    iteration_seconds_max: float
    iteration_seconds_total: float
    wake_latency_p50_seconds: float
    """Due instant to run, over all handles fired; bucket upper bounds."""
    wake_latency_p99_seconds: float
    wake_latency_max_seconds: float
    """Exact."""
    wake_latency_buckets: tuple[tuple[float, int], ...]
    """Non-empty histogram buckets: (upper bound in seconds, count)."""
    queue_depth: dict[str, int]
    """Ready handles waiting for their turn, per priority class label."""
    timers_waiting: int
    """Timers waiting for their instant (cancelled ones excluded)."""
    starvation_events: int
    """(iteration, class) pairs where a class ran only thanks to its guaranteed floor, because
    higher-priority classes would otherwise have taken the whole budget."""
    handles_cancelled: int
    callback_errors: int
    sentinel_wakeups: int
    """Wakeups with nothing to do (the sentinel deadline that keeps the wait set non-empty)."""
    gc_young_collections: int = 0
    """With ``gc_policy="idle"``: collections of generations 0-1 run by the poller."""
    gc_full_collections: int = 0
    gc_pause_max_seconds: float = 0.0
    """The longest of those collections (since the poller was created)."""
