"""``RunManager`` and ``RunJournal`` in process: retention of finished runs, journal cursors,
shutdown. (The endpoints over the real socket are in ``test_runs_api.py``.)"""

from __future__ import annotations

import asyncio

import pytest

from progressd.dsl import load_plan_text
from progressd.errors import StateError
from progressd.runs.manager import RunEnded, RunManager, UnknownRun
from progressd.runs.messages import MilestoneEvent, StateEvent

QUICK = """
version: 2
name: quick
load:
  scenarios:
    - name: s
      users: 2
      iterations: 1
      steps:
        - milestone: one
"""

WAITING = QUICK.replace("- milestone: one", "- external: {key: go, timeout: 30s}")


async def finish(manager: RunManager, text: str) -> str:
    run = manager.submit(load_plan_text(text, file="t.yaml", cache=None))
    entry = manager.entry(run.id)
    async with asyncio.timeout(10):
        await run.wait()
        assert entry.closer is not None
        await entry.closer
    return run.id


async def test_run_manager_keeps_only_the_newest_finished_runs() -> None:
    manager = RunManager(keep_finished=2)
    ids = [await finish(manager, QUICK) for _ in range(4)]
    assert [entry.id for entry in manager] == ids[2:]
    kept = manager.entry(ids[-1])
    assert kept.run is None  # the workbook and executors are let go; the figures stay
    assert kept.summary().state == "succeeded" and kept.progress().progress == 1.0
    with pytest.raises(UnknownRun, match=f"no run '{ids[0]}'"):
        manager.entry(ids[0])


async def test_run_manager_never_forgets_a_live_run() -> None:
    manager = RunManager(keep_finished=0)
    live = manager.submit(load_plan_text(WAITING, file="t.yaml", cache=None))
    done = await finish(manager, QUICK)
    assert [entry.id for entry in manager] == [live.id]
    assert done not in {entry.id for entry in manager}
    assert await manager.shutdown(5.0) == [live.id]
    assert live.status == "cancelled"


async def test_run_manager_refuses_to_steer_an_ended_run() -> None:
    manager = RunManager()
    run_id = await finish(manager, QUICK)
    with pytest.raises(RunEnded, match=rf"cannot resume run {run_id}: it has ended \(succeeded\)"):
        manager.resume(run_id)
    with pytest.raises(RunEnded):
        manager.rollback(run_id)


async def test_run_journal_replays_history_to_each_cursor() -> None:
    manager = RunManager()
    run_id = await finish(manager, QUICK)
    journal = manager.entry(run_id).journal
    lines, cursor = journal.since(0)
    again, _ = journal.since(0)
    later, end_cursor = journal.since(cursor)
    assert lines == again and later == [] and end_cursor == cursor
    assert isinstance(lines[0], StateEvent) and lines[0].reason == "submitted"
    assert [(e.milestone, e.users) for e in lines if isinstance(e, MilestoneEvent)] == [("one", 2)]
    assert isinstance(lines[-1], StateEvent) and lines[-1].state == "succeeded"
    assert journal.end is not None and journal.end.summary.milestones == {"one": 2}
    await journal.wait_change(30)  # a closed journal never makes a reader wait


async def test_run_journal_drops_the_oldest_lines_beyond_its_bound() -> None:
    manager = RunManager(journal_lines=3)
    run = manager.submit(load_plan_text(WAITING, file="t.yaml", cache=None))
    journal = manager.entry(run.id).journal
    for _ in range(5):
        manager.pause(run.id)
        manager.resume(run.id)
    lines, cursor = journal.since(0)
    assert len(lines) == 3 and cursor == 11  # submitted + 10 pause/resume lines
    manager.cancel(run.id)
    await manager.shutdown(5.0)


def test_run_manager_rejects_a_negative_retention() -> None:
    with pytest.raises(ValueError, match="keep_finished must be >= 0, got -1"):
        RunManager(keep_finished=-1)


async def test_run_manager_rollback_checks_the_user() -> None:
    manager = RunManager()
    run = manager.submit(load_plan_text(WAITING, file="t.yaml", cache=None))
    with pytest.raises(StateError, match=r"has users 0..1; there is no user 2"):
        manager.rollback(run.id, 2)
    await manager.shutdown(5.0)
