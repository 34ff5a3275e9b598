"""The seam between the runner and the step kinds that do I/O (http, exec, external).

The runner executes ``think``, ``milestone`` and ``when:`` itself: they need no network. Every
other kind is started through an executor from the runner's table, keyed by step kind::

    runner = Runner(plan, poller, executors={"http": HttpStepExecutor(...), ...})

An executor's ``start(call)`` begins the step and returns at once (it must not block or
await). When the step ends — on any later loop turn, from any callback — the executor calls
``call.complete(outcome)`` exactly once. That makes the user's completion pollable ready; the
poller then runs it in priority order and the runner applies the outcome (extracted vars,
errors, done work) and moves the user on. A user in flight therefore holds one pollable and the
executor's one awaitable, never a task of its own.

``StepCall`` is bound to one attempt: if the user is rolled back or the run cancelled while the
step is in flight, ``complete`` on the stale call is ignored (``cancelled`` tells the executor
it may abandon the work).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from progressd.dsl import Context, StepPlan
from progressd.poller import Poller, ProgressPollable

__all__ = ["ExecutorTable", "StepCall", "StepExecutor", "StepOutcome"]


class StepOutcome(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a step ended.

    ``ok`` false counts an error on the user (``error`` is the last-error text). ``vars`` are
    the values the step extracted; they are merged into the user's variables. ``payload`` is
    kept as the user's last external payload. ``latency_s`` is the step's own duration.
    """

    ok: bool
    error: str | None = None
    vars: dict[str, Any] | None = None
    payload: Any = None
    latency_s: float | None = None


class StepCall:
    """One attempt at one step for one user, handed to an executor."""

    __slots__ = ("_handle", "_poller", "context", "row", "started_at", "step")

    def __init__(
        self,
        poller: Poller,
        handle: ProgressPollable,
        row: int,
        step: StepPlan,
        context: Context,
    ) -> None:
        self._poller = poller
        self._handle = handle
        self.row = row
        self.step = step
        self.context = context
        self.started_at = poller.clock.now()

    def complete(self, outcome: StepOutcome) -> bool:
        """Report the step's end. Returns ``False`` when the attempt was already completed or
        abandoned (rollback, cancel): the outcome is then dropped."""
        return self._poller.make_ready(self._handle, outcome)

    def succeed(self, **fields: Any) -> bool:
        """``complete(StepOutcome(ok=True, ...))``."""
        return self.complete(StepOutcome(ok=True, **fields))

    def fail(self, error: str, **fields: Any) -> bool:
        """``complete(StepOutcome(ok=False, error=error, ...))``."""
        return self.complete(StepOutcome(ok=False, error=error, **fields))

    @property
    def cancelled(self) -> bool:
        """Whether the runner abandoned this attempt; the executor may stop its work."""
        return self._handle.cancelled

    @property
    def pollable(self) -> ProgressPollable:
        """The completion pollable this attempt makes ready."""
        return self._handle


class StepExecutor(Protocol):
    """Starts steps of one kind. ``start`` must return without blocking; it may raise for a
    step it cannot start (the runner records that as a failed step)."""

    def start(self, call: StepCall) -> None: ...


ExecutorTable = Mapping[str, StepExecutor]
"""Step kind (``http``, ``exec``, ``external``) -> its executor."""
