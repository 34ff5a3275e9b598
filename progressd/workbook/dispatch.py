"""Staged dispatch: the ``dispatching()`` block and the merge that ends it.

Design note. While the event bus hands a batch to its subscribers, a write back into the
workbook must not change committed state (other subscribers are still reading it, and the bus may
be walking the dirty list). So ``dispatching()`` installs a ``Staging`` on the workbook: while
it is set, each write method validates its arguments as usual and stages the write instead of
committing it; when the outermost block ends, ``_apply_staged`` replays the ops in issue order
through the ordinary write paths. What a staged op means and how ops coalesce is ``staging.py``.

Kept apart from ``core.py`` because nothing here runs on a committed write: the hot paths only
test ``_staging`` and, when it is set, hand over to the stage calls (``_stage_advance`` here).
``Dispatch`` is a mixin of ``Workbook`` with no state of its own; the slots it uses are declared
on ``Workbook``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from progressd.errors import StateError
from progressd.workbook.fields import Field, RollbackReason
from progressd.workbook.staging import OpKind, StagedOp, Staging, merge

__all__ = ["Dispatch"]


class Dispatch:
    """The staging half of ``Workbook`` (a mixin: it uses the workbook's state)."""

    __slots__ = ()

    _staging: Staging | None
    _check_row: Callable[[int], None]
    set: Callable[[int, Field, int | float], None]
    add: Callable[[int, Field, int | float], None]
    set_cold: Callable[[int, Field, object | None], None]
    _apply_milestone: Callable[[int, int], None]
    _apply_rollback: Callable[[int, RollbackReason], None]

    @contextmanager
    def dispatching(self) -> Iterator[None]:
        """Stage every write made inside the block; merge them in issue order at its end.

        Nested blocks join the outer one. Raises ``StateError`` after the merge if a staged
        write turned out not to fit (every other staged write is still applied).
        """
        if self._staging is not None:
            yield
            return
        # mypy checks these against the mixin's empty __slots__; the slot is declared on Workbook
        self._staging = Staging.empty()  # type: ignore[misc]
        try:
            yield
        finally:
            staging, self._staging = self._staging, None  # type: ignore[misc]
            merge(staging.ops, self._apply_staged)

    @property
    def is_dispatching(self) -> bool:
        return self._staging is not None

    def _stage_advance(self, row: int, step: int, done: int, iterations: int) -> None:
        """``advance`` while events are dispatched: staged as its three writes."""
        assert self._staging is not None
        self._check_row(row)
        _check_ints(step, done, iterations)
        if done:
            self._staging.stage_add(row, Field.DONE, done)
        if iterations:
            self._staging.stage_add(row, Field.ITERATION, iterations)
        self._staging.stage_set(row, Field.STEP, step)

    def _apply_staged(self, op: StagedOp) -> None:
        match op.kind:
            case OpKind.SET:
                self.set(op.row, Field(op.field), op.value)  # type: ignore[arg-type]
            case OpKind.ADD:
                self.add(op.row, Field(op.field), op.value)  # type: ignore[arg-type]
            case OpKind.SET_COLD:
                self.set_cold(op.row, Field(op.field), op.value)
            case OpKind.MILESTONE:
                self._apply_milestone(op.row, op.value)  # type: ignore[arg-type]
            case OpKind.ROLLBACK:
                self._apply_rollback(op.row, op.value)  # type: ignore[arg-type]


def _check_ints(*values: object) -> None:
    for value in values:
        if not isinstance(value, int):
            raise StateError(f"advance: {value!r} is not an integer")
