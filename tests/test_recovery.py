"""Runs kept in a real SQLite store: history, snapshots, and resuming from stable points."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest
from run_testkit import scenario, wait_until

from progressd.config import Config, RecoveryConfig, Seconds, StateConfig
from progressd.dsl import load_plan_text
from progressd.runs.backends import running_backends
from progressd.runs.history import parse_since, query_history
from progressd.runs.manager import RunManager
from progressd.runs.persistence import RunPersistence
from progressd.runs.snapshots import encode_stable_chunked
from progressd.store import Store
from progressd.workbook import Field, Workbook

STEPS = """\
        - think: 0ms
        - milestone: first
        - think: {second}
        - milestone: second
"""


def config(tmp_path: Path, mode: str = "resume") -> Config:
    state = StateConfig(
        directory=str(tmp_path), flush_interval=Seconds(0.01), sample_interval=Seconds(0.0)
    )
    return Config(state=state, recovery=RecoveryConfig(on_start=mode))  # type: ignore[arg-type]


def document(second: str = "10ms", users: int = 5) -> str:
    return scenario(STEPS.format(second=second), users=users, name="shop")


def persisted(tmp_path: Path, mode: str = "resume") -> tuple[Store, RunManager, RunPersistence]:
    store = Store.open(tmp_path / "progressd.db")
    manager = RunManager()
    return store, manager, RunPersistence(manager, store, config(tmp_path, mode))


def submit(manager: RunManager, text: str) -> str:
    plan = load_plan_text(text, file="shop.yaml", cache=None)
    return manager.submit(plan, source=text, file="shop.yaml").id


def milestone_counts(store: Store, run: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in store.events(run, kind="milestone"):
        counts[event.milestone] = counts.get(event.milestone, 0) + event.count
    return counts


async def crash_after_first_milestone(
    tmp_path: Path, text: str | None = None, *, users: int = 5, scenario: int = 0
) -> tuple[str, dict[str, int]]:
    """A run (by default ``document(second="30s")``) in which ``users`` users of scenario number
    ``scenario`` reached ``first``; its store is then abandoned without the run ending (what a
    kill -9 leaves): the committed history only."""
    store, manager, persistence = persisted(tmp_path)
    run_id = submit(manager, document(second="30s") if text is None else text)
    run = manager.entry(run_id).run
    assert run is not None
    await wait_until(lambda: run.progress().scenarios[scenario].milestones.get("first") == users)
    run.bus.flush(run.clock.now(), force=True)
    persistence.tick(1e9)
    await persistence.wait_snapshots()
    persistence.flush()
    committed = milestone_counts(store, run_id)
    manager.on_closed.clear()  # the process "dies": nothing more reaches the store
    run.cancel("crash")
    await run.wait()
    store.connection.close()
    return run_id, committed


async def test_persistence_records_a_run_its_events_samples_and_summary(tmp_path: Path) -> None:
    store, manager, persistence = persisted(tmp_path)
    run_id = submit(manager, document())
    entry = manager.entry(run_id)
    assert entry.run is not None
    persistence.tick(1e9)
    async with asyncio.timeout(10):
        await entry.run.wait()
        assert entry.closer is not None
        await entry.closer
    persistence.flush()
    stored = store.get_run(run_id)
    assert stored is not None
    assert (stored.status, stored.name, stored.source) == ("succeeded", "t", document())
    assert stored.finished_at is not None and stored.summary["users"] == 5
    assert milestone_counts(store, run_id) == {"first": 5, "second": 5}
    assert store.samples(run_id)[0].scenario == "shop"
    (submitted,) = store.events(run_id, kind="state")
    assert submitted.detail == {"users": None, "file": "shop.yaml"}


async def test_recovery_resumes_users_from_their_stable_points(tmp_path: Path) -> None:
    run_id, committed = await crash_after_first_milestone(tmp_path)
    assert committed == {"first": 5}
    _, manager, persistence = persisted(tmp_path)
    assert persistence.recover() == [run_id]
    entry = manager.entry(run_id)
    assert entry.resumed and entry.run is not None
    stored = persistence.store.get_run(run_id)
    assert stored is not None and stored.started_at is not None
    assert entry.run.started_wall == stored.started_at  # a deadline counts from the first start
    progress = entry.run.progress().scenarios[0]
    assert progress.milestones["first"] >= committed["first"]  # nothing committed is lost
    # the users carry on from "first": the 30 s think is ahead of them, not behind
    assert entry.run.workbook.totals().done_work == 5
    entry.run.cancel("test over")
    await entry.run.wait()


async def test_recovery_resumed_run_completes_with_every_milestone(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "progressd.db")
    text = document(second="20ms", users=3)
    store.add_run("r1", name="t", source=text, status="running")
    store.record_event("r1", "state", reason="submitted", detail={"users": 2, "file": "x.yaml"})
    store.flush()
    store.close()
    store, manager, persistence = persisted(tmp_path)
    assert persistence.recover() == ["r1"]
    entry = manager.entry("r1")
    assert entry.run is not None and entry.run.plan.total_users == 2  # the users override
    async with asyncio.timeout(10):
        summary = await entry.run.wait()
        assert entry.closer is not None
        await entry.closer
    persistence.flush()
    assert summary.state == "succeeded" and summary.milestones == {"first": 2, "second": 2}
    assert store.get_run("r1").status == "succeeded"  # type: ignore[union-attr]
    assert [e.reason for e in store.events("r1", kind="state")] == ["submitted", "resumed"]


async def test_recovery_interrupt_mode_marks_running_runs_interrupted(tmp_path: Path) -> None:
    run_id, _ = await crash_after_first_milestone(tmp_path)
    store, manager, persistence = persisted(tmp_path, mode="interrupt")
    assert persistence.recover() == [run_id]
    persistence.flush()
    assert len(manager) == 0
    assert store.get_run(run_id).status == "interrupted"  # type: ignore[union-attr]


async def test_recovery_unloadable_source_is_interrupted_not_lost(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "progressd.db")
    store.add_run("bad", name="t", source="version: 2\nname: [", status="running")
    store.flush()
    store.close()
    store, _, persistence = persisted(tmp_path)
    persistence.recover()
    persistence.flush()
    stored = store.get_run("bad")
    assert stored is not None and stored.status == "interrupted"
    assert stored.source == "version: 2\nname: ["


async def test_history_merges_live_runs_over_stored_ones(tmp_path: Path) -> None:
    run_id, _ = await crash_after_first_milestone(tmp_path)
    store, manager, persistence = persisted(tmp_path, mode="interrupt")
    persistence.recover()
    live_id = submit(manager, document(second="30s"))
    history = query_history(store, manager)
    assert [r.run for r in history.runs] == [live_id, run_id]
    assert [(r.state, r.live) for r in history.runs] == [("running", True), ("interrupted", False)]
    assert [r.run for r in query_history(store, manager, state="interrupted").runs] == [run_id]
    decoded = msgspec.json.decode(msgspec.json.encode(history))
    assert decoded["runs"][0]["summary"]["run"] == live_id
    with pytest.raises(ValueError, match="state: expected one of"):
        query_history(store, manager, state="bogus")
    live = manager.entry(live_id).run
    assert live is not None
    live.cancel("test over")
    await live.wait()


def test_parse_since_takes_epoch_iso_and_durations() -> None:
    assert parse_since("1700000000") == 1_700_000_000.0
    assert parse_since("2023-11-14T22:13:20+00:00") == 1_700_000_000.0
    assert parse_since("1h", now=7200.0) == 3600.0
    with pytest.raises(ValueError, match="since: expected epoch seconds"):
        parse_since("yesterday")


async def test_encode_stable_chunked_yields_and_restores_like_workbook_snapshot() -> None:
    wb = Workbook(["a", "b"], rows=3000)
    for row in range(0, 3000, 3):
        wb.set(row, Field.DONE, row % 11)
        wb.set_cold(row, Field.VARS, {"token": f"t{row}"})
        wb.reach_milestone(row, row % 2)
    result = await encode_stable_chunked(wb, chunk=4096)
    assert result.turns > 5 and result.version == wb.statistics().version
    restored, expected = Workbook.restore(result.data), Workbook.restore(wb.snapshot())
    assert restored.totals() == expected.totals()
    for row in (0, 1, 2997):
        assert restored.row_record(row) == expected.row_record(row)


async def test_persistence_records_each_member_state_change_once(tmp_path: Path) -> None:
    store, manager, persistence = persisted(tmp_path)
    async with running_backends() as (backend,):
        text = scenario(
            "        - think: 30s\n",
            users=2,
            name="shop",
            extra=f"""
resources:
  ip-port-pool:
    backends:
      members: ["{backend.address}", "127.0.0.1:9"]
      health-check: {{kind: tcp, interval: 50ms, timeout: 40ms, on-failure: rollback}}
""",
            scenario_extra="      resource_lease: {pool: backends, per: user}",
        )
        run_id = submit(manager, text)
        run = manager.entry(run_id).run
        assert run is not None and run.resources is not None
        resources = run.resources
        persistence.tick(0.0)  # the baseline: nothing to record yet

        def dead_state() -> str:
            (pool,) = resources.pool_records()
            return next(m.state for m in pool.members if m.address == "127.0.0.1:9")

        first = dead_state()
        async with asyncio.timeout(5):
            while True:  # the run's health checks run on the loop's real clock
                if dead_state() != first:
                    break
                await asyncio.sleep(0.02)
        persistence.tick(0.0)
        persistence.tick(0.0)  # no change since: nothing more
        run.cancel("test over")
        await run.wait()
    persistence.flush()
    changes = [e.detail for e in store.events(run_id, kind="state") if e.reason == "member"]
    assert changes == [
        {"pool": "backends", "member": "127.0.0.1:9", "from": first, "to": dead_state()}
    ]


TWO = """
version: 2
name: t
load:
  scenarios:
    - name: a
      users: 2
      iterations: 1
      steps:
        - think: 0ms
        - milestone: first
        - think: 30s
    - name: b
      users: 3
      iterations: 1
      steps:
        - think: 0ms
        - think: 0ms
        - milestone: first
        - think: 30s
"""


async def test_recovery_restores_per_scenario_figures_of_a_two_scenario_run(
    tmp_path: Path,
) -> None:
    run_id, _ = await crash_after_first_milestone(tmp_path, TWO, users=3, scenario=1)
    _, manager, persistence = persisted(tmp_path)
    persistence.recover()
    resumed = manager.entry(run_id).run
    assert resumed is not None
    a, b = resumed.scenario_figures()
    assert (a.done, b.done) == (2, 6)
    assert (a.users, a.finished, b.users, b.finished) == (2, 0, 3, 0)
    resumed.cancel("test over")
    await resumed.wait()


async def test_recovery_resumed_users_lease_again_and_do_not_redo_stable_work(
    tmp_path: Path,
) -> None:
    async with running_backends((0, 0)) as (one, two):
        text = scenario(
            """\
        - {name: home, http: {method: GET, url: "http://{{ lease.address }}/"}}
        - milestone: first
        - think: 300ms
        - {name: again, http: {method: GET, url: "http://{{ lease.address }}/health"}}
        - milestone: second
""",
            users=4,
            name="shop",
            extra=f"""
resources:
  ip-port-pool:
    backends:
      members: ["{one.address}", "{two.address}"]
      health-check: {{kind: tcp, interval: 100ms, timeout: 50ms, on-failure: rollback}}
""",
            scenario_extra="      resource_lease: {pool: backends, per: user}",
        )
        run_id, _ = await crash_after_first_milestone(tmp_path, text, users=4)
        _, manager, persistence = persisted(tmp_path)
        persistence.recover()
        resumed = manager.entry(run_id).run
        assert resumed is not None
        async with asyncio.timeout(10):
            summary = await resumed.wait()
    assert summary.state == "succeeded" and summary.milestones == {"first": 4, "second": 4}
    assert one.counts["/"] + two.counts["/"] == 4  # nobody fetched home twice
    assert one.counts["/health"] + two.counts["/health"] == 4  # tcp checks send no HTTP
