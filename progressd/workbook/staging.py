"""Writes issued while events are being dispatched, held until the dispatch ends.

A subscriber may write back into the workbook while it handles a batch. Applying that write at
once would change rows other subscribers are still reading (and could grow the dirty list the
bus is walking), so it is staged here instead and merged in issue order when the dispatch ends.
Small updates to the same row and field coalesce: a set replaces what is staged (last writer
wins), an add sums into it (a set followed by adds becomes one set). A milestone or rollback on a
row is a barrier: later writes to that row start new entries, so their order is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from progressd.errors import StateError
from progressd.workbook.fields import Field, RollbackReason


class OpKind(IntEnum):
    """What a staged operation does when merged."""

    SET = 0
    ADD = 1
    SET_COLD = 2
    MILESTONE = 3
    ROLLBACK = 4


_FIELD_COUNT: Final = len(Field)


@dataclass(slots=True)
class StagedOp:
    """One staged write. ``value`` is the value, delta, milestone index or rollback reason."""

    kind: OpKind
    row: int
    field: int
    value: object


@dataclass(slots=True)
class Staging:
    """Ordered staged operations plus the index that lets small updates coalesce."""

    ops: list[StagedOp]
    index: dict[int, StagedOp]
    writes: int = 0

    @classmethod
    def empty(cls) -> Staging:
        return cls(ops=[], index={})

    def stage_set(self, row: int, f: Field, value: int | float) -> None:
        op = self._coalescable(row, f)
        if op is None:
            self._append(StagedOp(OpKind.SET, row, f, value))
        else:
            op.kind = OpKind.SET
            op.value = value

    def stage_add(self, row: int, f: Field, delta: int | float) -> None:
        op = self._coalescable(row, f)
        if op is None:
            self._append(StagedOp(OpKind.ADD, row, f, delta))
        else:
            assert isinstance(op.value, int | float)
            op.value = op.value + delta

    def stage_cold(self, row: int, f: Field, value: object | None) -> None:
        op = self._coalescable(row, f)
        if op is None:
            self._append(StagedOp(OpKind.SET_COLD, row, f, value))
        else:
            op.value = value

    def stage_milestone(self, row: int, milestone: int) -> None:
        self._barrier(row)
        self.ops.append(StagedOp(OpKind.MILESTONE, row, -1, milestone))
        self.writes += 1

    def stage_rollback(self, row: int, reason: RollbackReason) -> None:
        self._barrier(row)
        self.ops.append(StagedOp(OpKind.ROLLBACK, row, -1, reason))
        self.writes += 1

    def _coalescable(self, row: int, f: Field) -> StagedOp | None:
        op = self.index.get(row * _FIELD_COUNT + f)
        if op is not None:
            self.writes += 1
        return op

    def _append(self, op: StagedOp) -> None:
        self.ops.append(op)
        self.index[op.row * _FIELD_COUNT + op.field] = op
        self.writes += 1

    def _barrier(self, row: int) -> None:
        base = row * _FIELD_COUNT
        for f in range(_FIELD_COUNT):
            self.index.pop(base + f, None)


def merge(ops: list[StagedOp], apply: Callable[[StagedOp], None]) -> None:
    """Apply staged ``ops`` in issue order. A rejected op does not stop the others.

    Raises:
        StateError: after all ops ran, when any was rejected (naming how many and the first).
    """
    rejected: list[str] = []
    for op in ops:
        try:
            apply(op)
        except StateError as exc:
            rejected.append(str(exc))
    if rejected:
        raise StateError(f"{len(rejected)} staged write(s) rejected at merge, first: {rejected[0]}")
