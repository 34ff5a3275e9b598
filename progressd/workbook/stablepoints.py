"""Stable points: a row's progress saved at a milestone and returned to by a rollback.

Design note. ``reach_milestone`` copies the row's hot progress fields (step, iteration, done
work, status, milestone, lease) into the stable columns (``stable.py``), marks the milestone in
the reached bitmap and references the row's cold values (``ColdStore.save_stable``).
``rollback`` restores step, iteration, done work, status and milestone from there, and the
referenced vars and payload (the start state, without them, when the row has no stable point);
lease, next-due time, error count and error text are kept. Each is one commit of the row plus
one ``JournalEntry``, which the event bus collects with the dirty rows (``take_changes``).
``stable_milestone`` reads a row's stable point; ``compact_stable`` compresses idle segments.

Kept apart from ``core.py`` because none of this is on the per-step path: the per-field write
paths live there and are reused here (``_write_hot``, ``_commit``). Inside ``dispatching()``
both public writes validate, then stage (``staging.py``); the merge applies them through
``_apply_milestone`` and ``_apply_rollback``. ``StablePoints`` is a mixin of ``Workbook`` with
no state of its own; the slots it uses are declared on ``Workbook``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableSequence
from typing import Any

from progressd.errors import StateError
from progressd.workbook.aggregates import Aggregates
from progressd.workbook.columns import ColdStore
from progressd.workbook.fields import RESTORED_HOT, ROLLBACK_REASONS, Field, RollbackReason, Status
from progressd.workbook.model import JournalEntry
from progressd.workbook.stable import StableColumns
from progressd.workbook.staging import Staging

__all__ = ["StablePoints"]

_START = (0, 0, 0, int(Status.PENDING), -1)


class StablePoints:
    """The milestone and rollback half of ``Workbook`` (a mixin: it uses the workbook's state)."""

    __slots__ = ()

    _milestones: tuple[str, ...]
    _cols: list[MutableSequence[Any]]
    _version: list[int]
    _cold: ColdStore
    _stable: StableColumns
    _stride: int
    _reached: bytearray
    _agg: Aggregates
    _journal: list[JournalEntry]
    _staging: Staging | None
    _check_row: Callable[[int], None]
    _write_hot: Callable[[int, Field, int | float], bool]
    _commit: Callable[[int, int], None]
    _note_pending: Callable[[], None]

    def stable_milestone(self, row: int) -> int:
        """The milestone of the row's stable point, ``-1`` when it has none."""
        self._check_row(row)
        point = self._stable.load(row)
        return -1 if point is None else point[4]

    def reach_milestone(self, row: int, milestone: int) -> None:
        """Mark the row as having reached ``milestone`` and make its current state the row's
        stable point (hot progress fields copied, cold values referenced)."""
        self._check_row(row)
        if not 0 <= milestone < len(self._milestones):
            raise StateError(f"milestone index {milestone} out of range 0..{len(self._milestones)}")
        if self._staging is not None:
            self._staging.stage_milestone(row, milestone)
        else:
            self._apply_milestone(row, milestone)

    def rollback(self, rows: Iterable[int], reason: RollbackReason) -> None:
        """Return each row to its stable point, or to the start when it has none.

        Step, iteration, done work, status, milestone, extracted vars and payload are restored;
        lease, next-due time, error count and error text are kept. The done work undone counts as
        rework; a ``rollback`` journal entry records the reason and the milestone returned to.
        """
        targets = list(rows)
        for row in targets:
            self._check_row(row)
        if reason not in ROLLBACK_REASONS:
            raise StateError(
                f"unknown rollback reason {reason!r}: one of {sorted(ROLLBACK_REASONS)}"
            )
        for row in targets:
            if self._staging is not None:
                self._staging.stage_rollback(row, reason)
            else:
                self._apply_rollback(row, reason)

    def compact_stable(self) -> int:
        """Compress stable segments untouched since the previous call (call it periodically);
        return how many were compressed."""
        return self._stable.compact()

    def _apply_milestone(self, row: int, milestone: int) -> None:
        c = self._cols
        mask = Field.MILESTONE.mask if self._write_hot(row, Field.MILESTONE, milestone) else 0
        at, bit = row * self._stride + (milestone >> 3), 1 << (milestone & 7)
        if not self._reached[at] & bit:
            self._reached[at] |= bit
            self._agg.milestone_reached[milestone] += 1
        self._agg.milestone_reaches += 1
        point = (c[Field.STEP][row], c[Field.ITERATION][row], c[Field.DONE][row])
        self._stable.save(row, (*point, c[Field.STATUS][row], milestone, c[Field.LEASE][row]))
        self._cold.save_stable(row)
        self._commit(row, mask)
        self._journal_append(
            JournalEntry(kind="milestone", row=row, milestone=milestone, version=self._version[row])
        )

    def _apply_rollback(self, row: int, reason: RollbackReason) -> None:
        point = self._stable.load(row)
        target = _START if point is None else point[:5]
        before = self._cols[Field.DONE][row]
        mask = 0
        for field, value in zip(RESTORED_HOT, target, strict=True):
            if self._write_hot(row, field, value):
                mask |= field.mask
        mask |= self._cold.restore_stable(row, has_stable=point is not None)
        undone = max(0, int(before - self._cols[Field.DONE][row]))
        self._agg.rework += undone
        self._agg.rollbacks += 1
        self._commit(row, mask)
        self._journal_append(
            JournalEntry(
                kind="rollback",
                row=row,
                milestone=int(target[4]),
                version=self._version[row],
                reason=reason,
                undone=undone,
            )
        )

    def _journal_append(self, entry: JournalEntry) -> None:
        self._note_pending()
        self._journal.append(entry)
