"""The small interface both progress models share, and the records they report.

``ProgressModel`` is what the runner, shadow mode and the benchmarks program against: the
columnar ``Workbook`` and the dict-per-user ``LegacyWorkbook`` both satisfy it, so the old and
the new model can run side by side and be compared through ``totals()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol

import msgspec

from progressd.workbook.fields import Field, RollbackReason


class ProgressTotals(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The run's aggregates; equal for two models that saw the same operations.

    ``status_counts[s]`` counts rows in ``Status(s)``; ``milestone_current[m]`` counts rows whose
    last milestone is ``m``; ``milestone_reached[m]`` counts rows that reached ``m`` at least once;
    ``milestone_reaches`` counts every reach; ``rework`` sums the done work undone by rollbacks.
    """

    rows: int
    done_work: int
    errors: int
    rework: int
    rollbacks: int
    milestone_reaches: int
    status_counts: tuple[int, ...]
    milestone_current: tuple[int, ...]
    milestone_reached: tuple[int, ...]


class WorkbookStatistics(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``Workbook.statistics()``: the totals plus the store's own bookkeeping.

    ``version`` counts committed writes; ``dirty_rows`` rows changed since the event bus last
    collected; ``staged_writes`` writes waiting for the current dispatch to end; ``journal``
    milestone and rollback records not yet collected; ``stable_raw_bytes`` /
    ``stable_stored_bytes`` the stable columns before and after compression;
    ``snapshot_raw_bytes`` / ``snapshot_bytes`` the last ``snapshot()`` before and after.
    """

    totals: ProgressTotals
    milestones: tuple[str, ...]
    version: int
    dirty_rows: int
    staged_writes: int
    journal: int
    stable_rows: int
    stable_raw_bytes: int
    stable_stored_bytes: int
    snapshot_raw_bytes: int = 0
    snapshot_bytes: int = 0

    @property
    def stable_compression_ratio(self) -> float:
        """Raw over stored bytes of the stable columns (1.0 when nothing is compressed)."""
        if self.stable_stored_bytes == 0:
            return 1.0
        return self.stable_raw_bytes / self.stable_stored_bytes


class ProgressModel(Protocol):
    """Apply updates, reach milestones, roll back, report aggregates.

    Rows are dense indices ``0..rows-1``; milestones are indices into ``milestones``.
    """

    @property
    def milestones(self) -> tuple[str, ...]: ...

    def add_rows(self, count: int) -> range: ...

    def get(self, row: int, field: Field) -> int | float: ...

    def get_cold(self, row: int, field: Field) -> object | None: ...

    def set(self, row: int, field: Field, value: int | float) -> None: ...

    def add(self, row: int, field: Field, delta: int | float) -> None: ...

    def set_cold(self, row: int, field: Field, value: object | None) -> None: ...

    def record_error(self, row: int, text: str) -> None: ...

    def reach_milestone(self, row: int, milestone: int) -> None: ...

    def rollback(self, rows: Iterable[int], reason: RollbackReason) -> None: ...

    def totals(self) -> ProgressTotals: ...

    def memory_bytes(self) -> int: ...


class JournalEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A milestone reach or a rollback, in the order they were committed.

    ``milestone`` is the milestone reached, or for a rollback the one returned to (``-1`` = the
    start); ``version`` the row version after the write; ``undone`` the done work a rollback
    removed (counted as rework).
    """

    kind: Literal["milestone", "rollback"]
    row: int
    milestone: int
    version: int
    reason: RollbackReason | None = None
    undone: int = 0


class RowRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One row read out whole, for the control API (``progressctl show``)."""

    row: int
    version: int
    status: str
    step: int
    iteration: int
    done: int
    lease: int
    due: float
    errors: int
    milestone: str | None
    stable_milestone: str | None
    vars: object | None = None
    error_text: str | None = None
    payload: object | None = None
