"""A bounded-memory latency histogram with log-linear buckets.

Design note. Latencies are recorded into a fixed array of counters, never a list of samples, so
memory stays the same after ten requests or ten billion. Recording is a binary search over the
buckets' upper edges (one tuple per layout, shared) and a few additions. The layout is
log-linear, the idea of HdrHistogram: each power of two above ``lowest`` is split into
``sub_buckets`` equal-width buckets, so every bucket is at most ``1/sub_buckets`` wide relative
to its lower edge (64 sub buckets: a relative error of at most 1.6 %). With the defaults (1 µs
.. 1 h, 64 sub buckets) that is 2,049 counters. A value below ``lowest`` lands in the underflow
bucket 0; a value above ``highest`` lands in the last bucket; ``min``, ``max``, ``sum`` and
``count`` are exact.

Percentiles report the upper edge of the bucket holding the ranked sample, clamped to the exact
``[min, max]``: never below the true value by more than the bucket width, and exact at the ends.
Two histograms with the same layout merge by adding counters.
"""

from __future__ import annotations

import functools
import math
from bisect import bisect_right

import msgspec


class HistogramSummary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A point-in-time summary of a histogram, in the unit that was recorded (seconds)."""

    count: int
    sum: float
    min: float
    max: float
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float


class LatencyHistogram:
    """Counts values (seconds) into log-linear buckets; answers percentiles; merges.

    Raises:
        ValueError: from the constructor on a bad layout, from ``record`` on a negative or NaN
            value, from ``percentile`` on ``p`` outside 0..100, from ``merge`` on a different
            layout.
    """

    __slots__ = (
        "_count",
        "_counts",
        "_edges",
        "_highest",
        "_lowest",
        "_max",
        "_min",
        "_sub",
        "_sum",
    )

    def __init__(
        self, *, lowest: float = 1e-6, highest: float = 3600.0, sub_buckets: int = 64
    ) -> None:
        if not (lowest > 0 and highest > lowest):
            raise ValueError(f"histogram needs 0 < lowest < highest, got {lowest}, {highest}")
        if sub_buckets < 1:
            raise ValueError(f"histogram needs sub_buckets >= 1, got {sub_buckets}")
        self._lowest = lowest
        self._highest = highest
        self._sub = sub_buckets
        octaves = math.frexp(highest / lowest)[1]
        self._counts = [0] * (1 + octaves * sub_buckets)
        self._edges = _edges(lowest, sub_buckets, len(self._counts))
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = 0.0

    # -- recording ---------------------------------------------------------------------------

    def record(self, value: float) -> None:
        """Count one value.

        Raises:
            ValueError: when ``value`` is negative or NaN.
        """
        if not value >= 0.0:
            raise ValueError(f"a latency must be a number >= 0, got {value}")
        # the bucket whose upper edge is the first above the value (the last one past them
        # all): a binary search in C, cheaper on this hot path than computing the index
        self._counts[bisect_right(self._edges, value)] += 1
        self._count += 1
        self._sum += value
        # a compare beats a call to min()/max() on this hot path
        if value < self._min:  # noqa: PLR1730
            self._min = value
        if value > self._max:  # noqa: PLR1730
            self._max = value

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts into this histogram.

        Raises:
            ValueError: when the two histograms have different layouts.
        """
        if self.layout() != other.layout():
            raise ValueError(
                f"cannot merge histograms with different layouts: {self.layout()} and "
                f"{other.layout()}; create both with the same lowest/highest/sub_buckets"
            )
        counts = self._counts
        for index, n in enumerate(other._counts):
            if n:
                counts[index] += n
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)

    def reset(self) -> None:
        """Forget every value; keep the layout."""
        self._counts = [0] * len(self._counts)
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = 0.0

    # -- queries -----------------------------------------------------------------------------

    def layout(self) -> tuple[float, float, int]:
        """``(lowest, highest, sub_buckets)``: histograms merge only with the same layout."""
        return (self._lowest, self._highest, self._sub)

    @property
    def bucket_count(self) -> int:
        """Number of counters held; fixed at construction."""
        return len(self._counts)

    @property
    def count(self) -> int:
        return self._count

    @property
    def sum(self) -> float:
        return self._sum

    @property
    def min(self) -> float:
        """Smallest value recorded; 0.0 when empty."""
        return self._min if self._count else 0.0

    @property
    def max(self) -> float:
        return self._max

    @property
    def mean(self) -> float:
        """Mean of the recorded values; 0.0 when empty."""
        return self._sum / self._count if self._count else 0.0

    def percentile(self, p: float) -> float:
        """The value at or below which ``p`` percent of the values lie; 0.0 when empty.

        Raises:
            ValueError: when ``p`` is not within 0..100.
        """
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"a percentile must be within 0..100, got {p}")
        if self._count == 0:
            return 0.0
        rank = max(1, math.ceil(p / 100.0 * self._count))
        if rank == 1:
            return self._min
        if rank >= self._count:
            return self._max
        seen = 0
        last = len(self._counts) - 1
        for index, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                edge = self._max if index == last else self._upper_edge(index)
                return min(max(edge, self._min), self._max)
        return self._max  # unreachable while counts add up to count

    def count_le(self, bound: float) -> int:
        """How many values lie in buckets whose upper edge is <= ``bound`` (for Prometheus
        ``le`` buckets; exact up to the bucket width)."""
        if bound >= self._max:
            return self._count
        total = 0
        for index, n in enumerate(self._counts):
            if self._upper_edge(index) > bound:
                break
            total += n
        return total

    def summary(self) -> HistogramSummary:
        """Count, sum, min, max, mean and the usual percentiles, in one record."""
        return HistogramSummary(
            count=self._count,
            sum=self._sum,
            min=self.min,
            max=self._max,
            mean=self.mean,
            p50=self.percentile(50),
            p90=self.percentile(90),
            p95=self.percentile(95),
            p99=self.percentile(99),
        )

    def _upper_edge(self, index: int) -> float:
        return _upper_edge(self._lowest, self._sub, index)


def _upper_edge(lowest: float, sub_buckets: int, index: int) -> float:
    """The exclusive upper edge of bucket ``index`` (bucket 0 holds the values below
    ``lowest``)."""
    if index == 0:
        return lowest
    octave, sub = divmod(index - 1, sub_buckets)
    return lowest * 2.0**octave * (1.0 + (sub + 1) / sub_buckets)


@functools.cache
def _edges(lowest: float, sub_buckets: int, buckets: int) -> tuple[float, ...]:
    """The upper edges of every bucket but the last (which takes everything above), shared by
    the histograms of one layout (2,048 floats: 64 KiB each otherwise)."""
    return tuple(_upper_edge(lowest, sub_buckets, i) for i in range(buckets - 1))
