"""Run totals kept incrementally: every write adjusts them in O(1), nothing scans the rows.

``recount`` is the full scan that the tests (and a shadow-mode check) compare them against;
it never runs on a hot path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from progressd.workbook.fields import Field, Status
from progressd.workbook.model import ProgressTotals

_DONE: Final = int(Field.DONE)
_STATUS: Final = int(Field.STATUS)
_ERRORS: Final = int(Field.ERRORS)
_MILESTONE: Final = int(Field.MILESTONE)


@dataclass(slots=True)
class Aggregates:
    """Mutable totals owned by one workbook. ``totals()`` freezes them into a record."""

    milestone_count: int
    rows: int = 0
    done_work: int = 0
    errors: int = 0
    rework: int = 0
    rollbacks: int = 0
    milestone_reaches: int = 0
    status_counts: list[int] = field(default_factory=lambda: [0] * len(Status))
    milestone_current: list[int] = field(default_factory=list)
    milestone_reached: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.milestone_current = [0] * self.milestone_count
        self.milestone_reached = [0] * self.milestone_count

    def add_rows(self, count: int) -> None:
        self.rows += count
        self.status_counts[Status.PENDING] += count

    def on_change(self, f: Field, old: int | float, new: int | float) -> None:
        """Account for hot field ``f`` moving from ``old`` to ``new`` on one row."""
        if f == _DONE:
            self.done_work += int(new) - int(old)
        elif f == _STATUS:
            self.status_counts[int(old)] -= 1
            self.status_counts[int(new)] += 1
        elif f == _ERRORS:
            self.errors += int(new) - int(old)
        elif f == _MILESTONE:
            if old >= 0:
                self.milestone_current[int(old)] -= 1
            if new >= 0:
                self.milestone_current[int(new)] += 1

    def totals(self) -> ProgressTotals:
        return ProgressTotals(
            rows=self.rows,
            done_work=self.done_work,
            errors=self.errors,
            rework=self.rework,
            rollbacks=self.rollbacks,
            milestone_reaches=self.milestone_reaches,
            status_counts=tuple(self.status_counts),
            milestone_current=tuple(self.milestone_current),
            milestone_reached=tuple(self.milestone_reached),
        )


def recount(
    columns: Sequence[Sequence[Any]], reached: bytearray, stride: int, agg: Aggregates
) -> ProgressTotals:
    """Recompute the totals by scanning every row (history counters come from ``agg``)."""
    c = columns
    statuses = Counter(c[Field.STATUS])
    current = Counter(c[Field.MILESTONE])
    counts = [0] * agg.milestone_count
    for m in range(agg.milestone_count):
        byte, bit = m >> 3, 1 << (m & 7)
        counts[m] = sum(1 for b in reached[byte :: stride or 1] if b & bit)
    return ProgressTotals(
        rows=agg.rows,
        done_work=int(sum(c[Field.DONE])),
        errors=int(sum(c[Field.ERRORS])),
        rework=agg.rework,
        rollbacks=agg.rollbacks,
        milestone_reaches=agg.milestone_reaches,
        status_counts=tuple(statuses[s] for s in Status),
        milestone_current=tuple(current[m] for m in range(agg.milestone_count)),
        milestone_reached=tuple(counts),
    )
