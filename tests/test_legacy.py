from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from progressd.errors import StateError
from progressd.legacy import LegacyEvent, LegacyWorkbook
from progressd.workbook import Field, ProgressModel, Status, Workbook

MILESTONES = ("logged-in", "paid")


def drive(model: ProgressModel, seed: int, rows: int = 40, steps: int = 600) -> None:
    """The same random operation sequence on any ProgressModel."""
    rng = random.Random(seed)
    model.add_rows(rows)
    for _ in range(steps):
        row = rng.randrange(rows)
        roll = rng.random()
        if roll < 0.3:
            model.add(row, Field.DONE, rng.randrange(1, 4))
        elif roll < 0.45:
            model.set(row, Field.STATUS, rng.choice(list(Status)))
        elif roll < 0.55:
            model.set_cold(row, Field.VARS, {"token": rng.choice("abc")})
        elif roll < 0.65:
            model.record_error(row, rng.choice(["boom", "timeout"]))
        elif roll < 0.8:
            model.reach_milestone(row, rng.randrange(len(MILESTONES)))
        elif roll < 0.85:
            model.rollback([row, rng.randrange(rows)], "health-check-failed")
        else:
            model.set(row, Field.STEP, rng.randrange(10))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_legacy_totals_match_the_workbook_on_the_same_operations(seed: int) -> None:
    legacy = LegacyWorkbook(MILESTONES)
    workbook = Workbook(MILESTONES)
    drive(legacy, seed)
    drive(workbook, seed)
    assert legacy.totals() == workbook.totals()
    for row in range(40):
        for f in (Field.STEP, Field.DONE, Field.STATUS, Field.ERRORS, Field.MILESTONE):
            assert legacy.get(row, f) == workbook.get(row, f)
        assert legacy.get_cold(row, Field.VARS) == workbook.get_cold(row, Field.VARS)
        assert legacy.version(row) == workbook.version(row)


def test_legacy_scan_finds_exactly_the_changed_users() -> None:
    legacy = LegacyWorkbook(MILESTONES, rows=5)
    seen: list[list[LegacyEvent]] = []
    legacy.subscribers.append(seen.append)
    assert legacy.scan() == []
    legacy.set(1, Field.STEP, 2)
    legacy.set(3, Field.STATUS, Status.ACTIVE)
    events = legacy.scan()
    assert [(e.row, e.changed) for e in events] == [
        (1, ("step", "version")),
        (3, ("status", "version")),
    ]
    assert seen == [events]
    assert legacy.scan() == []


def test_legacy_rollback_returns_to_stable_point_or_start() -> None:
    legacy = LegacyWorkbook(MILESTONES, rows=2)
    legacy.add(0, Field.DONE, 3)
    legacy.set_cold(0, Field.VARS, {"a": 1})
    legacy.reach_milestone(0, 0)
    legacy.add(0, Field.DONE, 4)
    legacy.set_cold(0, Field.VARS, {"a": 2})
    legacy.add(1, Field.DONE, 2)
    legacy.rollback([0, 1], "manual")
    assert legacy.get(0, Field.DONE) == 3
    assert legacy.get_cold(0, Field.VARS) == {"a": 1}
    assert legacy.get(1, Field.DONE) == 0
    assert legacy.get(1, Field.MILESTONE) == -1
    assert legacy.totals().rework == 6


def test_legacy_rejects_what_the_workbook_rejects() -> None:
    legacy = LegacyWorkbook(MILESTONES, rows=1)
    with pytest.raises(StateError, match="row 3 out of range"):
        legacy.set(3, Field.STEP, 1)
    with pytest.raises(StateError, match="cannot be set directly"):
        legacy.set(0, Field.MILESTONE, 1)
    with pytest.raises(StateError, match="out of range"):
        legacy.reach_milestone(0, 5)
    with pytest.raises(StateError, match="unknown rollback reason"):
        legacy.rollback([0], "why")  # type: ignore[arg-type]


def test_legacy_memory_is_several_times_the_workbook() -> None:
    legacy = LegacyWorkbook(MILESTONES)
    workbook = Workbook(MILESTONES)
    drive(legacy, 9, rows=2000, steps=4000)
    drive(workbook, 9, rows=2000, steps=4000)
    assert legacy.memory_bytes() > 5 * workbook.memory_bytes()


async def test_legacy_scan_forever_polls_until_cancelled() -> None:
    legacy = LegacyWorkbook(MILESTONES, rows=3)
    seen: list[list[LegacyEvent]] = []
    legacy.subscribers.append(seen.append)
    task = asyncio.ensure_future(legacy.scan_forever(0))
    await asyncio.sleep(0)
    legacy.set(2, Field.STEP, 1)
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert [[e.row for e in batch] for batch in seen] == [[2]]
