"""``Workbook.advance``: the runner's fused step transition (one commit for pointer, done work
and iteration), checked against the three separate writes it replaces."""

from __future__ import annotations

from decimal import Decimal

import pytest

from progressd.errors import StateError
from progressd.workbook import Field, Workbook
from progressd.workbook.fields import BOXED_LIMITS


def make(rows: int = 3) -> Workbook:
    return Workbook(["m"], rows=rows)


def test_workbook_advance_reads_like_the_separate_writes() -> None:
    fused, split = make(), make()
    for step, done, iterations in [(1, 1, 0), (2, 1, 0), (0, 1, 1), (0, 0, 1), (3, 2, 0)]:
        fused.advance(1, step, done, iterations)
        split.set(1, Field.STEP, step)
        split.add(1, Field.DONE, done)
        split.add(1, Field.ITERATION, iterations)
        for f in (Field.STEP, Field.DONE, Field.ITERATION):
            assert fused.get(1, f) == split.get(1, f)
        assert fused.totals() == split.totals() == fused.recount()


def test_workbook_advance_is_one_commit_with_the_changed_fields_dirty() -> None:
    wb = make()
    wb.advance(2, 0, 1, 1)  # the pointer stays 0: only done and iteration change
    assert wb.version(2) == 1
    assert wb.statistics().version == 1
    assert wb.take_changes().rows == [(2, Field.DONE.mask | Field.ITERATION.mask, 1)]
    wb.advance(2, 4)
    assert wb.take_changes().rows == [(2, Field.STEP.mask, 2)]


def test_workbook_advance_that_changes_nothing_commits_nothing() -> None:
    wb = make()
    calls: list[int] = []
    wb.on_change = lambda: calls.append(1)
    wb.advance(0, 0)
    assert wb.version(0) == 0
    assert not wb.has_changes
    assert calls == []
    wb.advance(0, 1)
    assert calls == [1]


def test_workbook_advance_writes_nothing_when_a_value_does_not_fit() -> None:
    wb = make()
    wb.advance(0, 5, 3, 2)
    with pytest.raises(StateError, match="does not fit row 0"):
        wb.advance(0, 6, 1, 2**31)  # the iteration column is int32
    with pytest.raises(StateError, match="does not fit row 0"):
        wb.advance(0, 1.5, 1)  # type: ignore[arg-type]
    assert (wb.get(0, Field.STEP), wb.get(0, Field.DONE), wb.get(0, Field.ITERATION)) == (5, 3, 2)
    assert wb.version(0) == 1
    assert wb.totals().done_work == 3
    for row in (3, -1):
        with pytest.raises(StateError, match="out of range"):
            wb.advance(row, 0, 1)
    assert wb.get(2, Field.DONE) == 0 and wb.version(2) == 0


def test_workbook_advance_version_wraps_mod_2_32() -> None:
    wb = make()
    wb._version[1] = 0xFFFFFFFF  # as after 2**32 - 1 commits
    wb.advance(1, 1, 1)
    assert wb.version(1) == 0
    assert wb.take_changes().rows == [(1, Field.STEP.mask | Field.DONE.mask, 0)]


def test_workbook_advance_is_staged_while_dispatching() -> None:
    wb = make()
    with wb.dispatching():
        wb.advance(1, 2, 1, 0)
        wb.advance(1, 0, 1, 1)
        assert wb.get(1, Field.DONE) == 0  # readers see committed state only
        with pytest.raises(StateError, match="not an integer"):
            wb.advance(1, 0.5, 1)  # type: ignore[arg-type]
    assert (wb.get(1, Field.STEP), wb.get(1, Field.DONE), wb.get(1, Field.ITERATION)) == (0, 2, 1)
    assert wb.totals() == wb.recount()


def test_workbook_column_is_the_live_committed_column() -> None:
    wb = make(2)
    steps = wb.column(Field.STEP)
    wb.advance(1, 3, 1)
    assert steps[1] == 3
    with wb.dispatching():
        wb.advance(1, 4, 1)
        assert steps[1] == 3  # staged writes are not committed yet
    assert steps[1] == 4
    wb.add_rows(2)
    assert wb.column(Field.STEP) is steps and len(steps) == 4
    with pytest.raises(StateError, match="not a hot field"):
        wb.column(Field.VARS)


@pytest.mark.parametrize("field", [Field.STEP, Field.ITERATION, Field.DONE])
def test_workbook_advance_takes_each_column_to_its_exact_limits(field: Field) -> None:
    low, high = BOXED_LIMITS[field]
    for target in (high, low):  # wide values leave the one-digit fast compare: exact check
        wb = make()
        args = {Field.STEP: (target, 0, 0), Field.ITERATION: (0, 0, target)}
        step, done, iterations = args.get(field, (0, target, 0))
        wb.advance(0, step, done, iterations)
        assert wb.get(0, field) == target
        over = 1 if target == high else -1
        step, done, iterations = {
            Field.STEP: (target + over, 0, 0),
            Field.ITERATION: (0, 0, over),
            Field.DONE: (0, over, 0),
        }[field]
        with pytest.raises(StateError, match="out of range"):
            wb.advance(0, step, done, iterations)
        assert wb.get(0, field) == target and wb.version(0) == 1


@pytest.mark.parametrize(
    "bad", [None, "1", 1.0, Decimal(1), float("nan")], ids=["none", "str", "float", "dec", "nan"]
)
def test_workbook_advance_refuses_anything_but_ints_in_any_position(bad: object) -> None:
    wb = make()
    for position in range(3):
        args: list[object] = [1, 1, 1]
        args[position] = bad
        with pytest.raises(StateError, match="expected integers"):
            wb.advance(0, *args)  # type: ignore[arg-type]
    assert wb.version(0) == 0 and not wb.has_changes and wb.totals().done_work == 0
