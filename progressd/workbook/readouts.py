"""Readouts: the records the workbook builds on demand — totals, statistics, size, whole rows.

Design note. Every figure here is assembled from state the write paths already keep: ``totals``
reads the incremental ``Aggregates`` (O(statuses + milestones)), ``statistics`` adds the
bookkeeping counters, ``memory_bytes`` sums the stores' own byte counts (O(columns + segments)),
``row_record`` gathers one row's hot and cold fields into a ``RowRecord``. Only ``recount``
scans every row: it is the reference the tests hold the incremental totals to.

Kept apart from ``core.py`` because nothing here runs on a write: the API, telemetry, a run's
figures and persistence and the tests call these, on their own schedule; no step does.
``Readouts`` is a mixin of ``Workbook`` with no state of its own; the slots it uses are declared
on ``Workbook``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, MutableSequence
from typing import Any

from progressd.workbook.aggregates import Aggregates, recount
from progressd.workbook.columns import ColdStore, HotColumns
from progressd.workbook.fields import Field, Status
from progressd.workbook.model import JournalEntry, ProgressTotals, RowRecord, WorkbookStatistics
from progressd.workbook.stable import StableColumns
from progressd.workbook.staging import OpKind, StagedOp, Staging

__all__ = ["Readouts"]


class Readouts:
    """The reporting half of ``Workbook`` (a mixin: it uses the workbook's state)."""

    __slots__ = ()

    _milestones: tuple[str, ...]
    _hot: HotColumns
    _cols: list[MutableSequence[Any]]
    _version: list[int]
    _cold: ColdStore
    _stable: StableColumns
    _stride: int
    _reached: bytearray
    _agg: Aggregates
    _dirty_rows: list[int]
    _journal: list[JournalEntry]
    _staging: Staging | None
    _commits: int
    _snapshot_sizes: tuple[int, int]
    _check_row: Callable[[int], None]
    stable_milestone: Callable[[int], int]

    def row_record(self, row: int) -> RowRecord:
        """The whole row as a record."""
        self._check_row(row)
        c = self._cols
        return RowRecord(
            row=row,
            version=self._version[row],
            status=Status(int(c[Field.STATUS][row])).name.lower(),
            step=int(c[Field.STEP][row]),
            iteration=int(c[Field.ITERATION][row]),
            done=int(c[Field.DONE][row]),
            lease=int(c[Field.LEASE][row]),
            due=float(c[Field.DUE][row]),
            errors=int(c[Field.ERRORS][row]),
            milestone=self._milestonefield_name(int(c[Field.MILESTONE][row])),
            stable_milestone=self._milestonefield_name(self.stable_milestone(row)),
            vars=self._cold.get(row, Field.VARS),
            error_text=_as_text(self._cold.get(row, Field.ERROR_TEXT)),
            payload=self._cold.get(row, Field.PAYLOAD),
        )

    def totals(self) -> ProgressTotals:
        """The incrementally kept totals (O(statuses + milestones))."""
        return self._agg.totals()

    def recount(self) -> ProgressTotals:
        """The totals recomputed by scanning every row: for tests and audits, never hot."""
        return recount(self._cols, self._reached, self._stride, self._agg)

    def statistics(self) -> WorkbookStatistics:
        return WorkbookStatistics(
            totals=self._agg.totals(),
            milestones=self._milestones,
            version=self._commits,
            dirty_rows=len(self._dirty_rows),
            staged_writes=0 if self._staging is None else self._staging.writes,
            journal=len(self._journal),
            stable_rows=self._stable.stable_rows,
            stable_raw_bytes=self._stable.raw_bytes(),
            stable_stored_bytes=self._stable.stored_bytes(),
            snapshot_raw_bytes=self._snapshot_sizes[0],
            snapshot_bytes=self._snapshot_sizes[1],
        )

    def memory_bytes(self) -> int:
        """Bytes the workbook holds: columns, sparse maps and their values, stable segments,
        reached bitmap, dirty list, journal and staged writes. O(columns + segments)."""
        journal = sys.getsizeof(self._journal) + len(self._journal) * _JOURNAL_ENTRY_BYTES
        staged = 0
        if self._staging is not None:
            staged = len(self._staging.ops) * _STAGED_OP_BYTES + sys.getsizeof(self._staging.index)
        return (
            self._hot.nbytes()
            + self._cold.nbytes()
            + self._stable.nbytes()
            + sys.getsizeof(self._reached)
            + sys.getsizeof(self._dirty_rows)
            + journal
            + staged
        )

    def _milestonefield_name(self, index: int) -> str | None:
        return None if index < 0 else self._milestones[index]


_JOURNAL_ENTRY_BYTES = sys.getsizeof(JournalEntry(kind="rollback", row=0, milestone=0, version=0))
_STAGED_OP_BYTES = sys.getsizeof(StagedOp(OpKind.SET, 0, 0, 0)) + 32  # + its index entry


def _as_text(value: object | None) -> str | None:
    return None if value is None else str(value)
