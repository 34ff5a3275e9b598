"""The runner, the poller and the real event bus wired the way the daemon wires them: the bus
flushes from a per-iteration hook, a subscriber sees milestones in order, and a subscriber that
writes back into the workbook during dispatch (a rollback) is merged, not re-entrant."""

from __future__ import annotations

from progressd.clock import FakeClock
from progressd.dsl import load_plan_text
from progressd.events import Batch, BatchingConfig, EventBus
from progressd.poller import Poller
from progressd.runner import Runner
from progressd.workbook import Status

PLAN = """
version: 2
name: t
load:
  scenarios:
    - name: s
      users: 3
      iterations: 2
      steps:
        - think: 1s
        - milestone: one
        - think: 1s
        - milestone: two
"""


def make() -> tuple[Runner, Poller, FakeClock, EventBus]:
    plan = load_plan_text(PLAN, file="t.yaml")
    clock = FakeClock(0.0)
    poller = Poller(clock, plan.progress.poller.priorities)
    runner = Runner(plan, poller)
    bus = EventBus(runner.workbook, clock, BatchingConfig(flush_interval=0.05))
    poller.add_iteration_hook(bus.flush_due, bus.next_deadline)
    bus.on_wake = poller.notify
    return runner, poller, clock, bus


def settle(poller: Poller, clock: FakeClock, bus: EventBus) -> None:
    for _ in range(1000):
        if poller.run_ready():
            continue
        deadlines = [d for d in (poller.next_deadline(), bus.next_deadline()) if d is not None]
        if not deadlines:
            return
        clock.set(max(min(deadlines), clock.now() + 0.001))
    raise AssertionError("did not settle")


def test_runner_milestones_reach_bus_subscribers_in_order() -> None:
    runner, poller, clock, bus = make()
    batches: list[Batch] = []
    bus.subscribe(["milestone"], batches.append)
    runner.start()
    settle(poller, clock, bus)
    events = [e for b in batches for e in b.events]
    assert len(events) == 3 * 2 * 2  # users x iterations x milestones
    assert [b.seq for b in batches] == sorted(b.seq for b in batches)
    names = runner.workbook.milestones
    for row in range(3):
        mine = [names[e.milestone] for e in events if e.row == row]
        assert mine == ["one", "two", "one", "two"]
    assert runner.state == "finished"


def test_runner_rollback_written_back_during_dispatch_is_merged() -> None:
    runner, poller, clock, bus = make()
    rolled: list[int] = []

    def on_batch(batch: Batch) -> None:
        for event in batch.events:
            if (
                event.row == 0
                and not rolled
                and runner.workbook.milestones[event.milestone] == "one"
            ):
                rolled.append(event.row)
                runner.rollback_users([0], "health-check-failed")  # staged during dispatch

    bus.subscribe(["milestone"], on_batch)
    runner.start()
    settle(poller, clock, bus)
    wb = runner.workbook
    assert rolled == [0]
    assert wb.totals().rollbacks == 1
    assert all(wb.status(row) is Status.DONE for row in range(3))
    assert wb.totals() == wb.recount()
    assert bus.statistics().subscriber_errors == 0
    assert poller.statistics().callback_errors == 0
    assert runner.statistics().rollbacks == 1
