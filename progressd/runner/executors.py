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

from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import msgspec

from progressd.dsl import Context, StepPlan
from progressd.poller import Poller, ProgressPollable

__all__ = ["SUCCEEDED", "ContextOf", "ExecutorTable", "StepCall", "StepExecutor", "StepOutcome"]


class StepOutcome(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a step ended.

    ``ok`` false counts an error on the user (``error`` is the last-error text). ``vars`` are
    the values the step extracted; they are merged into the user's variables. ``payload`` is
    kept as the user's last external payload. ``latency_s`` is the step's own duration, for
    whoever inspects the outcome (the runner does not read it: latencies live in the step's
    histograms).
    """

    ok: bool
    error: str | None = None
    vars: dict[str, Any] | None = None
    payload: Any = None
    latency_s: float | None = None


SUCCEEDED: Final = StepOutcome(ok=True)
"""The plain success, one shared instance: a step with nothing to report (no vars, no payload)
completes with it, and the runner recognises it by identity, skipping every check of the
outcome. It is what a request loop's steps end with, so none is allocated per step."""

ContextOf = Callable[[int], Context]
"""Builds the evaluation context of a row (the runner's ``RowContext``)."""


class StepCall(msgspec.Struct, eq=False):
    """One attempt at one step for one user, handed to an executor.

    ``row`` and ``step`` say what to run; ``started_at`` is the instant of the poller
    iteration that started the attempt (``Poller.now``). ``context`` (the user's ``{{ ... }}``
    roots) is made on first read, from ``context_of(row)``: a step without templates never
    pays for it, and a root still holds the user's values at the moment it is first read,
    as with a context made up front. Construct it positionally (``poller, handle, row, step,
    context_of, started_at``).
    """

    # A Struct rather than a class with __init__: the runner makes one per step started,
    # and a Struct is built in C (about a fifth of the cost). eq=False: compared and hashed
    # by identity, as an attempt should be.
    _poller: Poller
    _handle: ProgressPollable
    row: int
    step: StepPlan
    _context_of: ContextOf
    started_at: float
    _context: Context | None = None

    @property
    def context(self) -> Context:
        """The user's evaluation context, made on first read (see the class note)."""
        context = self._context
        if context is None:
            context = self._context = self._context_of(self.row)
        return context

    def complete(self, outcome: StepOutcome) -> bool:
        """Report the step's end. Returns ``False`` when the attempt was already completed or
        abandoned (rollback, cancel): the outcome is then dropped."""
        return self._poller.make_ready(self._handle, outcome)

    def succeed(self, **fields: Any) -> bool:
        """``complete(StepOutcome(ok=True, ...))`` (``SUCCEEDED`` without fields)."""
        return self.complete(StepOutcome(ok=True, **fields) if fields else SUCCEEDED)

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
