"""The runner drives users as workbook rows through pollables: think timers, milestones,
``when:`` guards, I/O steps through the executor table, rollback and cancel. FakeClock only."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from progressd.clock import FakeClock, MonotonicClock
from progressd.dsl import Plan, load_plan_text
from progressd.errors import StateError
from progressd.poller import Poller
from progressd.runner import Runner, StepCall
from progressd.workbook import Field, Status, Workbook


def make_plan(
    steps: str, *, users: int = 1, bounds: str = "iterations: 1", extra: str = ""
) -> Plan:
    text = f"""
version: 2
name: t
{extra}
load:
  scenarios:
    - name: s
      users: {users}
      {bounds}
      steps:
{steps}
"""
    return load_plan_text(text, file="t.yaml")


def make_runner(plan: Plan, **kwargs: Any) -> tuple[Runner, Poller, FakeClock]:
    clock = FakeClock(1000.0)
    poller = Poller(clock, plan.progress.poller.priorities)
    return Runner(plan, poller, **kwargs), poller, clock


def drain(poller: Poller, clock: FakeClock, *, step: float = 0.5, limit: int = 10_000) -> None:
    """Run iterations, moving the fake clock to the next deadline whenever nothing is ready."""
    for _ in range(limit):
        if poller.run_ready():
            continue
        deadline = poller.next_deadline()
        if deadline is None:
            return
        clock.set(max(deadline, clock.now()))
    raise AssertionError("the run did not settle")


class RecordingExecutor:
    """A real executor double: keeps every call; the test completes them."""

    def __init__(self) -> None:
        self.calls: list[StepCall] = []

    def start(self, call: StepCall) -> None:
        self.calls.append(call)


def status_count(runner: Runner, status: Status) -> int:
    return runner.workbook.totals().status_counts[status]


def test_runner_iterations_milestones_and_done_work() -> None:
    plan = make_plan(
        "        - think: 1s\n        - milestone: half\n        - think: 2s\n",
        users=3,
        bounds="iterations: 2",
    )
    runner, poller, clock = make_runner(plan)
    runner.start()
    poller.run_ready()
    assert status_count(runner, Status.THINKING) == 3
    drain(poller, clock)
    totals = runner.workbook.totals()
    assert totals.done_work == 2 * 2 * 3  # two work steps, two iterations, three users
    assert totals.milestone_reaches == 6
    assert status_count(runner, Status.DONE) == 3
    assert runner.state == "finished" and runner.active == 0
    assert clock.now() == pytest.approx(1000.0 + 2 * 3.0)
    assert runner.statistics().iterations == 6
    assert totals == runner.workbook.recount()


def test_runner_ramp_spreads_user_starts() -> None:
    plan = load_plan_text(
        "version: 2\nname: t\nload:\n  scenarios:\n    - name: s\n      users: 4\n"
        "      ramp: 4s\n      steps:\n        - think: 10s\n",
        file="t.yaml",
    )
    runner, poller, clock = make_runner(plan)
    runner.start()
    poller.run_ready()
    assert status_count(runner, Status.THINKING) == 1
    clock.advance(2.0)
    poller.run_ready()
    assert status_count(runner, Status.THINKING) == 3


def test_runner_think_range_stays_within_bounds() -> None:
    plan = make_plan("        - think: {min: 1s, max: 3s}\n", users=50)
    runner, poller, _ = make_runner(plan, seed=7)
    runner.start()
    poller.run_ready()
    dues = sorted(h.due for h in runner._handles if h is not None)
    assert 1001.0 <= dues[0] < dues[-1] <= 1003.0


def test_runner_false_guard_on_own_fields_skips_the_step() -> None:
    plan = make_plan(
        '        - {think: 5s, when: "{{ vars.slow }}"}\n        - think: 1s\n',
        extra="vars: {slow: false}",
    )
    runner, poller, clock = make_runner(plan)
    runner.start()
    drain(poller, clock)
    assert clock.now() == 1001.0
    stats = runner.statistics()
    assert stats.steps_skipped == 1 and stats.steps_run == 2
    assert runner.workbook.totals().done_work == 2


def test_runner_guard_on_lease_waits_and_rechecks_only_when_the_lease_changes() -> None:
    plan = make_plan('        - {think: 1s, when: "{{ lease.address }}"}\n', users=2)
    leases = {7: {"address": "127.0.0.1:18081", "host": "127.0.0.1", "port": 18081}}
    runner, poller, clock = make_runner(plan, lease_info=lambda row, lease: leases.get(lease))
    runner.start()
    poller.run_ready()
    assert status_count(runner, Status.WAITING) == 2
    for _ in range(5):
        clock.advance(1)
        poller.run_ready()
    assert runner.statistics().guard_rechecks == 0  # nothing dirty, nothing re-evaluated
    runner.lease_changed(0, 3)  # a lease without address info: guard still false
    runner.lease_changed(1, 7)
    assert runner.statistics().guard_rechecks == 2
    drain(poller, clock)
    assert runner.workbook.status(1) is Status.DONE
    assert runner.workbook.status(0) is Status.WAITING
    assert runner.statistics().waiting_guards == 1


def test_runner_guard_on_run_time_is_rechecked_by_the_progress_check() -> None:
    plan = make_plan('        - {think: 0s, when: "{{ run.elapsed >= 2 }}"}\n')
    runner, poller, clock = make_runner(plan, recheck_interval=0.5)
    runner.start()
    poller.run_ready()
    assert runner.workbook.status(0) is Status.WAITING
    drain(poller, clock)
    assert runner.workbook.status(0) is Status.DONE
    assert clock.now() == pytest.approx(1002.0)
    assert runner.statistics().guard_rechecks == 4  # at 0.5, 1.0, 1.5 and 2.0 s


def test_runner_io_step_completes_through_its_pollable() -> None:
    plan = make_plan("        - exec: {argv: ['true']}\n        - think: 1s\n", users=2)
    executor = RecordingExecutor()
    runner, poller, clock = make_runner(plan, executors={"exec": executor})
    runner.start()
    poller.run_ready()
    assert len(executor.calls) == 2 and runner.statistics().in_flight == 2
    assert status_count(runner, Status.ACTIVE) == 2
    executor.calls[0].succeed(vars={"token": "abc"})
    executor.calls[1].fail("exit code 1")
    assert not executor.calls[1].fail("again")  # one completion per attempt
    drain(poller, clock)
    wb = runner.workbook
    assert wb.get_cold(0, Field.VARS) == {"token": "abc"}
    assert wb.get(1, Field.ERRORS) == 1 and wb.get_cold(1, Field.ERROR_TEXT) == "exit code 1"
    assert runner.statistics().steps_failed == 1
    assert wb.totals().done_work == 4 and runner.state == "finished"


def test_runner_executor_that_raises_fails_the_step() -> None:
    class Broken:
        def start(self, call: StepCall) -> None:
            raise OSError("no such program")

    plan = make_plan("        - exec: {argv: [nope]}\n")
    runner, poller, clock = make_runner(plan, executors={"exec": Broken()})
    runner.start()
    drain(poller, clock)
    text = runner.workbook.get_cold(0, Field.ERROR_TEXT)
    assert text == "exec step did not start: no such program"


def test_runner_without_an_executor_for_a_kind_refuses_the_plan() -> None:
    plan = make_plan('        - http: {method: GET, url: "http://127.0.0.1:1/"}\n')
    with pytest.raises(StateError, match="no http executor is configured"):
        make_runner(plan)


def test_runner_rollback_returns_users_to_their_stable_point() -> None:
    plan = make_plan(
        "        - think: 1s\n        - milestone: m\n        - exec: {argv: ['true']}\n"
        "        - think: 1s\n"
    )
    executor = RecordingExecutor()
    runner, poller, clock = make_runner(plan, executors={"exec": executor})
    runner.start()
    drain(poller, clock)
    assert len(executor.calls) == 1  # in flight, after the milestone
    stale = executor.calls[0]
    runner.rollback_users([0], "health-check-failed")
    assert stale.cancelled and not stale.succeed()  # the old attempt can no longer move it
    drain(poller, clock)
    assert len(executor.calls) == 2  # resumed at the step after the milestone
    executor.calls[1].succeed()
    drain(poller, clock)
    wb = runner.workbook
    assert wb.status(0) is Status.DONE and wb.totals().rollbacks == 1
    assert runner.statistics().in_flight == 0


def test_runner_cancel_stops_every_user() -> None:
    plan = make_plan("        - think: 10s\n", users=5)
    runner, poller, clock = make_runner(plan)
    runner.start()
    poller.run_ready()
    runner.cancel()
    assert status_count(runner, Status.CANCELLED) == 5
    assert poller.statistics().timers_waiting == 0
    clock.advance(20)
    assert poller.run_ready() == 0
    assert runner.state == "cancelled"
    with pytest.raises(StateError, match="a run starts once"):
        runner.start()


def test_runner_duration_bound_scenario_stops_after_its_duration() -> None:
    plan = make_plan("        - think: 1s\n", users=2, bounds="duration: 3s")
    runner, poller, clock = make_runner(plan)
    runner.start()
    drain(poller, clock)
    assert runner.state == "finished"
    assert runner.statistics().iterations == 6  # 3 per user: at 1, 2 and 3 s


def test_runner_holder_progress_reports_ratio_and_milestone() -> None:
    plan = make_plan("        - think: 1s\n        - milestone: m\n        - think: 1s\n")
    runner, poller, clock = make_runner(plan)
    runner.start()
    poller.run_ready()
    clock.advance(1)
    poller.run_ready()
    assert runner.holder_progress(0) == (0.5, "m")


async def test_runner_100000_thinking_users_create_no_tasks() -> None:
    plan = make_plan("        - think: 30s\n", users=100_000)
    runner, poller, clock = make_runner(plan)
    before = len(asyncio.all_tasks())
    runner.start()
    while poller.run_ready():
        pass
    assert len(asyncio.all_tasks()) == before
    assert status_count(runner, Status.THINKING) == 100_000
    assert poller.statistics().timers_waiting == 100_000
    clock.advance(30)
    while poller.run_ready():
        assert len(asyncio.all_tasks()) == before
    assert status_count(runner, Status.DONE) == 100_000
    assert await runner.wait_finished() == "finished"


async def test_runner_real_loop_run_with_many_users_holds_one_task() -> None:
    plan = make_plan("        - think: 1ms\n        - milestone: m\n", users=2000,
                     bounds="iterations: 3")  # fmt: skip
    poller = Poller(MonotonicClock(), plan.progress.poller.priorities)
    runner = Runner(plan, poller)
    before = len(asyncio.all_tasks())
    main = asyncio.ensure_future(poller.run())
    runner.start()
    poller.notify()
    seen = 0

    async def watch() -> None:
        nonlocal seen
        while runner.state == "running":
            seen = max(seen, len(asyncio.all_tasks()))
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(watch())
    assert await asyncio.wait_for(runner.wait_finished(), 30) == "finished"
    await watcher
    poller.stop()
    await main
    assert seen <= before + 3  # poller task, watcher, wait_for: none per user
    assert runner.workbook.totals().milestone_reaches == 6000


def test_runner_start_uses_the_clock_not_a_stale_iteration_instant() -> None:
    plan = make_plan("        - think: 1s\n", users=2, bounds="duration: 2s")
    runner, poller, clock = make_runner(plan)
    clock.advance(100)  # the poller has not iterated since it was built
    runner.start()
    assert runner.started_at == clock.now()
    drain(poller, clock)
    assert runner.statistics().iterations == 4  # 2 s of 1 s thinks per user, not 0


def test_runner_on_a_workbook_with_rows_already_in_use() -> None:
    plan = make_plan("        - think: 1s\n        - milestone: m\n", users=3)
    workbook = Workbook(["m"], rows=5)  # rows 0-4 belong to someone else
    clock = FakeClock(0.0)
    poller = Poller(clock, plan.progress.poller.priorities)
    runner = Runner(plan, poller, workbook)
    runner.start()
    drain(poller, clock)
    assert [workbook.status(r) for r in range(8)] == [Status.PENDING] * 5 + [Status.DONE] * 3
    assert runner.holder_progress(7) == (1.0, "m")
    runner.rollback_users([6], "manual")  # a finished row is left alone
    assert workbook.totals().rollbacks == 0


def test_runner_refuses_a_workbook_without_the_plan_milestones() -> None:
    plan = make_plan("        - milestone: m\n        - think: 1s\n")
    poller = Poller(FakeClock(0.0))
    with pytest.raises(StateError, match=r"lacks milestones \['m'\]"):
        Runner(plan, poller, Workbook(["other"]))


def test_runner_zero_think_users_rolled_back_and_cancelled_mid_loop() -> None:
    plan = make_plan(
        "        - think: 0s\n        - milestone: m\n" + "        - think: 0s\n" * 4,
        users=3,
        bounds="iterations: 50",
    )
    runner, poller, _clock = make_runner(plan)
    stable_done: list[int] = []
    runner.add_milestone_hook(
        lambda row, _name: row == 1 and stable_done.append(int(wb.get(1, Field.DONE)))
    )
    wb = runner.workbook
    runner.start()
    for _ in range(8):  # each user re-yields through its ready slot
        poller.run_ready()
    done_before = int(wb.get(1, Field.DONE))
    assert done_before > stable_done[-1]  # past its stable point, a slot queued
    runner.rollback_users([1], "manual")  # the queued slot is cancelled, never run
    assert wb.get(1, Field.DONE) == stable_done[-1]
    assert wb.totals().rework == done_before - stable_done[-1]
    assert wb.get(1, Field.STEP) == 2  # the step after the milestone
    for _ in range(3):
        poller.run_ready()
    assert runner.statistics().rollbacks == 1
    runner.cancel()
    assert poller.run_ready() == 0  # no cancelled slot fires
    assert status_count(runner, Status.CANCELLED) == 3
    assert wb.totals() == wb.recount()


def test_runner_zero_think_loop_finishes_with_exact_work() -> None:
    plan = make_plan("        - think: 0s\n        - think: 0s\n", users=4, bounds="iterations: 25")
    runner, poller, clock = make_runner(plan)
    runner.start()
    drain(poller, clock)
    wb = runner.workbook
    assert runner.state == "finished"
    assert [wb.get(r, Field.DONE) for r in range(4)] == [50] * 4
    assert [wb.get(r, Field.ITERATION) for r in range(4)] == [25] * 4
    assert runner.statistics().steps_run == 200 and wb.totals() == wb.recount()


def complete_all(executor: RecordingExecutor, poller: Poller, **fields: Any) -> int:
    """Succeed every call not completed yet, then run the completions; how many there were."""
    pending = [c for c in executor.calls if c.pollable.pending and not c.pollable.ready()]
    for call in pending:
        call.succeed(**fields)
    poller.run_ready()
    return len(pending)


def test_runner_io_loop_finishes_with_exact_work() -> None:
    plan = make_plan("        - exec: {argv: ['true']}\n", users=3, bounds="iterations: 4")
    executor = RecordingExecutor()
    runner, poller, _clock = make_runner(plan, executors={"exec": executor})
    runner.start()
    poller.run_ready()
    completed = [complete_all(executor, poller) for _ in range(5)]
    assert completed == [3, 3, 3, 3, 0]  # each completion starts the next request at once
    wb = runner.workbook
    assert [wb.get(r, Field.DONE) for r in range(3)] == [4] * 3
    assert runner.state == "finished" and status_count(runner, Status.DONE) == 3
    stats = runner.statistics()
    assert stats.steps_run == 12 and stats.iterations == 12 and stats.in_flight == 0
    assert wb.totals() == wb.recount()


def test_runner_guard_of_the_io_step_after_a_completion_sees_its_vars() -> None:
    plan = make_plan(
        "        - exec: {argv: ['true']}\n"
        "        - {exec: {argv: ['true']}, when: \"{{ vars.go }}\"}\n",
        users=2,
        extra="vars: {go: false}",
    )
    executor = RecordingExecutor()
    runner, poller, clock = make_runner(plan, executors={"exec": executor})
    runner.start()
    poller.run_ready()
    first, second = executor.calls
    first.succeed(vars={"go": True})  # user 0 runs the guarded step, user 1 skips it
    second.succeed()
    poller.run_ready()
    assert [c.row for c in executor.calls[2:]] == [first.row]
    executor.calls[2].succeed()
    drain(poller, clock)
    stats = runner.statistics()
    assert stats.steps_skipped == 1 and stats.steps_run == 4  # a skipped step counts as run
    assert runner.workbook.totals().done_work == 4 and runner.state == "finished"


def test_runner_failed_io_step_is_recorded_and_the_user_carries_on() -> None:
    plan = make_plan("        - exec: {argv: ['true']}\n", bounds="iterations: 2")
    executor = RecordingExecutor()
    runner, poller, _clock = make_runner(plan, executors={"exec": executor})
    runner.start()
    poller.run_ready()
    executor.calls[0].fail("exit code 3")
    poller.run_ready()
    assert len(executor.calls) == 2  # the next iteration started
    wb = runner.workbook
    assert wb.get(0, Field.ERRORS) == 1 and wb.get_cold(0, Field.ERROR_TEXT) == "exit code 3"
    executor.calls[1].succeed(payload={"n": 1})
    poller.run_ready()
    assert wb.get_cold(0, Field.PAYLOAD) == {"n": 1} and runner.state == "finished"
