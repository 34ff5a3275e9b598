"""``StepCall``: one attempt at one step, handed to an executor. Its context is made when an
executor first reads it, and shows the user's values at that moment; it completes once."""

from __future__ import annotations

from progressd.clock import FakeClock
from progressd.dsl import load_plan_text
from progressd.poller import Poller
from progressd.runner import Runner, StepCall, StepOutcome
from progressd.workbook import Field

PLAN = """
version: 2
name: t
vars: {host: a}
load:
  scenarios:
    - name: s
      users: 2
      iterations: 1
      steps:
        - exec: {argv: ['true']}
"""


class Recording:
    def __init__(self) -> None:
        self.calls: list[StepCall] = []

    def start(self, call: StepCall) -> None:
        self.calls.append(call)


def started() -> tuple[Runner, Poller, list[StepCall]]:
    plan = load_plan_text(PLAN, file="t.yaml")
    clock = FakeClock(50.0)
    poller = Poller(clock, plan.progress.poller.priorities)
    executor = Recording()
    runner = Runner(plan, poller, executors={"exec": executor})
    runner.start()
    poller.run_ready()
    return runner, poller, executor.calls


def test_step_call_context_shows_the_values_when_first_read() -> None:
    runner, _, calls = started()
    call = calls[0]
    runner.workbook.set_cold(call.row, Field.VARS, {"host": "b"})  # after start, before read
    context = call.context
    assert context["vars"] == {"host": "b"}
    assert call.context is context  # one context per attempt
    assert calls[1].context["vars"] == {"host": "a"}


def test_step_call_knows_its_attempt() -> None:
    _, poller, calls = started()
    call = calls[0]
    assert call.step.kind == "exec" and call.started_at == poller.now
    assert call.pollable.pending and not call.cancelled
    assert call.complete(StepOutcome(ok=True))
    assert not call.fail("late")  # one completion per attempt
    assert len({calls[0], calls[1]}) == 2 and calls[0] != calls[1]  # compared by identity
