"""The runner: virtual users as workbook rows driven by pollables, never by tasks.

Design note. A user is a row. Whatever it waits for, it holds exactly one ``ProgressPollable``
(kept in ``_handles[row]`` so it can be cancelled), and no coroutine:

    thinking            -> a TIMER handle due when the think time ends
    blocked on when:    -> a CONDITION handle, re-checked only when its fields change (guards.py)
    a step in flight    -> a COMPLETION handle the executor makes ready (executors.py)
    starting / resuming -> a TIMER handle (ramp slot, or "now" after a rollback)

When its handle fires, the user runs steps inline — think 0 is still a yield, milestones and
skipped guards are not — until one blocks, at most one iteration's worth, then yields again
(think handles are the poller's re-armable slots: a zero think returns ``AGAIN`` from the
callback and the poller re-queues the same handle, no allocation, no call).
Finishing a step is one ``Workbook.advance`` (pointer, done work, iteration: one commit).
Progress is written to the workbook as it happens: done work per finished step, the step
pointer, the iteration, status transitions, milestones (stable points), errors and extracted
vars. The hot path reads the step pointer and iteration straight from the workbook's live
columns (``Workbook.column``: no ``get`` call, and no mirror to keep in step) and mirrors only the
status; a rollback (the one other writer of the status) invalidates that mirror and the user
re-reads it on resume. The runner's steps run only in poller callbacks, never while the
workbook is dispatching, so its own writes are committed (in the columns) when it reads them.

Invariants: a row holds at most one pending handle; ``active`` counts rows not yet DONE,
FAILED or CANCELLED; a completion arriving for an abandoned attempt is dropped by the poller
(its handle was cancelled), so an old executor can never move a rolled-back user.
"""

from __future__ import annotations

import asyncio
import random
from array import array
from collections.abc import Callable, Mapping
from typing import Any, Literal

from progressd.dsl import Context, Plan, StepPlan
from progressd.errors import StateError
from progressd.poller import AGAIN, PollableKind, Poller, ProgressPollable
from progressd.runner.binding import Binding
from progressd.runner.context import RowContext
from progressd.runner.executors import SUCCEEDED, ExecutorTable, StepCall, StepOutcome
from progressd.runner.guards import GuardWaits
from progressd.runner.scenario import IO, THINK, PreparedScenario, prepare_run
from progressd.runner.stopping import Stopping
from progressd.workbook import Field, Status, Workbook

__all__ = ["RunState", "Runner"]

RunState = Literal["created", "running", "finished", "cancelled", "failed"]
LeaseInfo = Callable[[int, int], Mapping[str, Any] | None]
MilestoneHook = Callable[[int, str], object]
_IoStep = tuple[StepPlan, Callable[[StepCall], None], int, int]
"""An I/O step, its executor's ``start``, the status its user shows and its handle's rank."""

_STEP, _ITERATION, _STATUS = Field.STEP, Field.ITERATION, Field.STATUS
_ACTIVE, _THINKING, _WAITING = int(Status.ACTIVE), int(Status.THINKING), int(Status.WAITING)
_DONE_STATUS = int(Status.DONE)
_COMPLETION = PollableKind.COMPLETION


class Runner(Binding, Stopping):
    """Runs every scenario of ``plan`` on ``poller``, recording progress in ``workbook``.

    ``executors`` maps the I/O step kinds the plan uses (``http``, ``exec``, ``external``) to
    their executors (each step's executor is looked up once, here: the table is fixed once the
    runner exists). ``lease_info(row, lease_id)`` returns the ``lease`` context of a row.
    Implements the resource manager's ``ProgressBinding`` (``lease_changed``,
    ``rollback_users``, ``holder_progress`` in binding.py; ``abort`` in stopping.py).

    Raises:
        StateError: when the plan uses a step kind with no executor, or ``workbook`` does not
            hold the plan's milestones.
    """

    # slots, not a __dict__: past 30 attributes CPython 3.11 stops sharing instance-dict keys,
    # and every attribute read on the hot path becomes a dict lookup
    __slots__ = (
        "_active",
        "_context_cb",
        "_failed",
        "_finished",
        "_first_row",
        "_guards",
        "_handles",
        "_in_flight",
        "_io",
        "_iter_col",
        "_iterations",
        "_lease_info",
        "_milestone_hooks",
        "_on_complete_cb",
        "_on_resume_cb",
        "_ranks",
        "_rng",
        "_rollbacks",
        "_row_scenario",
        "_scenarios",
        "_skipped",
        "_status",
        "_step_col",
        "_steps_run",
        "_think_cbs",
        "_timer_rank",
        "executors",
        "plan",
        "poller",
        "reason",
        "recheck_interval",
        "run_id",
        "started_at",
        "state",
        "workbook",
    )

    def __init__(
        self,
        plan: Plan,
        poller: Poller,
        workbook: Workbook | None = None,
        *,
        executors: ExecutorTable | None = None,
        lease_info: LeaseInfo | None = None,
        run_id: str = "run",
        seed: int | None = 0,
        recheck_interval: float = 0.05,
    ) -> None:
        self.plan = plan
        self.poller = poller
        self.run_id = run_id
        self.executors = dict(executors or {})
        self.recheck_interval = recheck_interval
        self._lease_info = lease_info
        self._rng = random.Random(seed)
        self.workbook, self._scenarios = prepare_run(plan, workbook, self.executors)
        rows = sum(s.users for s in self._scenarios)
        self._first_row = self.workbook.add_rows(rows).start
        self._init_rows(rows)
        self._ranks = {
            name: self._rank(name) for name in ("step", "timer", "condition", "external")
        }
        self._guards = GuardWaits(self._context, poller, self._ranks["condition"], recheck_interval)
        self._timer_rank = self._ranks["timer"]
        self._think_cbs = [self._make_on_think(sc) for sc in self._scenarios]
        self._on_resume_cb = self._on_resume
        self._on_complete_cb = self._on_complete  # bound once, not per step started
        self._context_cb = self._context
        self._io = [self._io_steps(sc) for sc in self._scenarios]
        self._init_counters()

    def _init_rows(self, rows: int) -> None:
        self._step_col = self.workbook.column(_STEP)  # live, committed; rows are workbook rows
        self._iter_col = self.workbook.column(_ITERATION)
        self._status = bytearray(rows)
        self._row_scenario = array("H", b"".join(
            array("H", [s.index]).tobytes() * s.users for s in self._scenarios
        ))  # fmt: skip
        self._handles: list[ProgressPollable | None] = [None] * rows
        self._active = rows

    def _init_counters(self) -> None:
        self.state: RunState = "created"
        self.reason: str | None = None
        self.started_at = 0.0
        self._steps_run = 0
        self._skipped = 0
        self._failed = 0
        self._iterations = 0
        self._in_flight = 0
        self._rollbacks = 0
        self._finished: asyncio.Future[RunState] | None = None
        self._milestone_hooks: list[MilestoneHook] = []

    def _rank(self, name: str) -> int:
        classes = self.poller.classes
        return classes.rank_of(name) if name in classes else self.poller.default_rank

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, *, restored: bool = False) -> None:
        """Schedule every user's start (spread over the scenario's ramp); returns at once.

        ``restored``: the workbook was filled from a stable snapshot (crash recovery). Users
        that were done stay done, users at a stable point resume from it at once, the others
        start over at their ramp slot. O(users), once.

        Raises:
            StateError: when the run was already started.
        """
        if self.state != "created":
            raise StateError(f"run {self.run_id!r} is {self.state}; a run starts once")
        self.state = "running"
        self.started_at = now = self.poller.clock.now()  # not poller.now: it may be stale
        rank = self._ranks["step"]
        for sc in self._scenarios:
            users, ramp = sc.users, sc.plan.ramp_s
            for i in range(users):
                row = sc.first_row + i
                callback = self._restore_row(row) if restored else self._on_start
                if callback is None:
                    continue
                due = now + ramp * i / users if ramp and callback == self._on_start else now
                handle = self.poller.subscribe_timer(due, callback, row, rank)
                self._handles[row - self._first_row] = handle
        if self._active == 0:
            self._end("finished")

    # -- the hot path ---------------------------------------------------------------------

    def _scenario_of(self, row: int) -> PreparedScenario:
        return self._scenarios[self._row_scenario[row - self._first_row]]

    def _on_start(self, handle: ProgressPollable) -> None:
        row = handle.owner
        self._run(row, self._scenario_of(row))

    def _make_on_think(self, sc: PreparedScenario) -> Callable[[ProgressPollable], object]:
        """The think-end callback of ``sc``'s users: finish the step, start the next.

        The hot path of think-only scenarios. A closure, so what it reads per step is a local
        or a cell rather than an attribute; ``_advance`` and ``_user_done`` are inlined here
        (keep them in step). The arrays it binds are created once, in ``_init_rows``.
        """
        first, steps, iters, statuses, handles = (
            self._first_row, self._step_col, self._iter_col, self._status, self._handles
        )  # fmt: skip
        count, fixed, limit, duration = len(sc.kinds), sc.fixed_think, sc.iterations, sc.duration_s
        advance, poller, rank, run = self.workbook.advance, self.poller, self._timer_rank, self._run
        subscribe_timer = poller.subscribe_timer

        def on_think(handle: ProgressPollable) -> object:
            row = handle.owner
            local = row - first
            self._steps_run += 1
            p = steps[row] + 1
            if p < count:
                advance(row, p, 1)
            else:
                self._iterations += 1
                p = 0
                if limit is not None:
                    iteration = iters[row] + 1
                    advance(row, 0, 1, 1)
                    done = iteration >= limit
                else:
                    advance(row, 0, 1, 1)
                    done = duration is not None and poller._now - self.started_at >= duration
                if done:
                    self._finish(row, _DONE_STATUS)
                    return None
            seconds = fixed[p]
            status = statuses[local]
            # the next step is a plain think in the same status: skip _run's general path
            if seconds == 0.0 and status == _ACTIVE:
                return AGAIN  # the poller re-arms this slot
            if seconds > 0.0 and status == _THINKING:
                handles[local] = subscribe_timer(
                    poller._now + seconds, on_think, row, rank, rearmable=True
                )
            else:
                run(row, sc)
            return None

        return on_think

    def _run(self, row: int, sc: PreparedScenario) -> None:
        """Run steps inline from the row's pointer until one blocks (at most an iteration).

        The row's status is written where it blocks (THINKING, WAITING, ACTIVE for a step in
        flight or a zero think), so a user hopping from think to think never flips to ACTIVE
        and back: one workbook write fewer per step, and the same status a reader would see.
        """
        local = row - self._first_row
        for _ in range(len(sc.kinds)):
            p = self._step_col[row]
            guard = sc.guards[p]
            if guard is not None and not guard.evaluate(self._context(row)):
                if sc.guard_waits[p]:
                    self._wait_guard(row, guard)
                    return
                self._skipped += 1
                if not self._advance(row, sc, True):
                    return
                continue
            kind = sc.kinds[p]
            if kind == THINK:
                low, high = sc.think[p]
                seconds = low if low == high else self._rng.uniform(low, high)
                status = _THINKING if seconds > 0 else _ACTIVE
                if self._status[local] != status:
                    self._set_status(row, status)
                self._handles[local] = self.poller.subscribe_timer(
                    self.poller._now + seconds,
                    self._think_cbs[sc.index],
                    row,
                    self._timer_rank,
                    rearmable=True,  # on_think re-arms it for a zero think next
                )
                return
            if kind == IO:
                self._start_io(row, sc, p)
                return
            alive = self._advance(row, sc, False)
            self._reach_milestone(row, sc, p)  # the stable point is the step after it
            if not alive:
                return
        self._handles[local] = self.poller.subscribe_timer(
            self.poller.now, self._on_resume_cb, row, self._ranks["step"]
        )

    def _advance(self, row: int, sc: PreparedScenario, work: bool) -> bool:
        """Finish the current step; return ``False`` when the user is done."""
        if work:
            self._steps_run += 1
        p = self._step_col[row] + 1
        if p < len(sc.kinds):
            self.workbook.advance(row, p, int(work))
            return True
        self._iterations += 1
        iteration = self._iter_col[row] + 1
        self.workbook.advance(row, 0, int(work), 1)
        if self._user_done(sc, iteration):
            self._finish(row, int(Status.DONE))
            return False
        return True

    def _user_done(self, sc: PreparedScenario, iteration: int) -> bool:
        if sc.iterations is not None:
            return iteration >= sc.iterations
        return sc.duration_s is not None and self.poller._now - self.started_at >= sc.duration_s

    def _set_status(self, row: int, status: int) -> None:
        local = row - self._first_row
        if self._status[local] != status:
            self._status[local] = status
            self.workbook.set(row, _STATUS, status)

    def _finish(self, row: int, status: int) -> None:
        local = row - self._first_row
        self._set_status(row, status)
        self._handles[local] = None
        self._active -= 1
        if self._active == 0 and self.state == "running":
            self._end("finished")

    # -- resuming, I/O steps --------------------------------------------------------------

    def _on_resume(self, handle: ProgressPollable) -> None:
        """A guard now holds, or the user resumes after a rollback or a long inline run."""
        row = handle.owner
        local = row - self._first_row
        self._status[local] = int(self.workbook.get(row, _STATUS))
        self._run(row, self._scenario_of(row))  # writes the status where the user blocks next

    def _io_steps(self, sc: PreparedScenario) -> list[_IoStep | None]:
        """Per step of ``sc``: for an I/O step, what ``_start_io`` needs, looked up once."""
        table: list[_IoStep | None] = []
        for step, kind in zip(sc.plan.steps, sc.kinds, strict=True):
            if kind != IO:
                table.append(None)
                continue
            external = step.kind == "external"  # a report is awaited: the user shows WAITING
            status = _WAITING if external else _ACTIVE
            rank = self._ranks["external" if external else "step"]
            table.append((step, self.executors[step.kind].start, status, rank))
        return table

    def _start_io(self, row: int, sc: PreparedScenario, p: int) -> None:
        step, start, status, rank = self._io[sc.index][p]  # type: ignore[misc]
        local = row - self._first_row
        if self._status[local] != status:  # _set_status inlined
            self._status[local] = status
            self.workbook.set(row, _STATUS, status)
        poller = self.poller
        handle = poller.subscribe(_COMPLETION, self._on_complete_cb, row, rank)
        self._handles[local] = handle
        self._in_flight += 1
        try:
            start(StepCall(poller, handle, row, step, self._context_cb, poller._now))
        except Exception as exc:
            poller.make_ready(
                handle, StepOutcome(ok=False, error=f"{step.kind} step did not start: {exc}")
            )

    def _on_complete(self, handle: ProgressPollable) -> None:
        """The row's step ended: apply its outcome, finish the step, start the next one.

        The hot path of request loops. ``_advance`` and ``_user_done`` are inlined here (keep
        them in step), and so is ``_run``'s case of an unguarded I/O step next (a user looping
        over requests): started at once.
        """
        row = handle.owner
        self._in_flight -= 1
        outcome = handle._value  # set by make_ready: the only way a completion handle fires
        if outcome is not SUCCEEDED and (
            not isinstance(outcome, StepOutcome)
            or not outcome.ok
            or outcome.vars
            or outcome.payload is not None
        ):
            self._apply(row, outcome)
        sc = self._scenarios[self._row_scenario[row - self._first_row]]
        self._steps_run += 1
        p = self._step_col[row] + 1
        if p < len(sc.kinds):
            self.workbook.advance(row, p, 1)
        else:
            self._iterations += 1
            limit = sc.iterations
            if limit is not None:
                done = self._iter_col[row] + 1 >= limit
            else:
                duration = sc.duration_s
                done = duration is not None and self.poller._now - self.started_at >= duration
            self.workbook.advance(row, 0, 1, 1)
            if done:
                self._finish(row, _DONE_STATUS)
                return
            p = 0
        if sc.kinds[p] == IO and sc.guards[p] is None:
            self._start_io(row, sc, p)
        else:
            self._run(row, sc)

    def _apply(self, row: int, outcome: object) -> None:
        """Record what a finished step left: its error, extracted vars, payload."""
        if not isinstance(outcome, StepOutcome):
            outcome = StepOutcome(ok=False, error="the step ended without an outcome")
        wb = self.workbook
        if not outcome.ok:
            self._failed += 1
            wb.record_error(row, outcome.error or "step failed")
        if outcome.vars:
            old = wb.get_cold(row, Field.VARS)
            merged = {**old, **outcome.vars} if isinstance(old, Mapping) else dict(outcome.vars)
            wb.set_cold(row, Field.VARS, merged)
            self._guards.touch(row, "vars")
        if outcome.payload is not None:
            wb.set_cold(row, Field.PAYLOAD, outcome.payload)

    def _context(self, row: int) -> Context:
        return RowContext(self, row)
