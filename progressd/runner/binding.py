"""A row's bindings: what leases, guards, milestone hooks and executors exchange with a user.

Design note. ``Binding`` holds the ``Runner`` methods that meet the rest of the daemon one row
at a time. They are apart from ``core.py`` (the per-step path) because none is on the think or
request loops that docs/perf benchmarks: ``_run`` calls ``_wait_guard`` only when a guard
blocks and ``_reach_milestone`` only at a milestone step, ``start`` calls ``_restore_row`` once
per row of a restored run, and the rest are called from outside the runner.

    leases      -> the resource manager's ``ProgressBinding`` (``lease_changed``,
                   ``holder_progress``, ``rollback_users``; ``abort`` is in stopping.py), and
                   ``lease_of`` / ``mark_waiting_for_resource`` for a step waiting on a lease
    guards      -> ``_wait_guard`` parks a row on a CONDITION handle; ``touch`` re-checks it
    milestones  -> ``add_milestone_hook``; ``_reach_milestone`` records one and calls the hooks
    resuming    -> ``rollback_users`` (live) and ``_restore_row`` (a run restored from a
                   snapshot) put a row back at its stable point
    executors   -> ``complete`` for an executor that knows only the row

It is a mixin of ``Runner``: no state of its own (``__slots__ = ()``; every slot is declared on
``Runner``, so the hot path's slot layout is ``Runner``'s alone); the annotations below name
the runner attributes it uses. mypy checks a write against this class's empty ``__slots__``,
hence ``type: ignore[misc]`` on the two counter writes.

Invariants: a rollback moves only rows that have not ended (DONE, FAILED, CANCELLED), and drops
each one's pending handle before arming its resume timer, so a row holds at most one handle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, get_args

from progressd.errors import StateError
from progressd.poller import PollableKind, Poller, ProgressPollable
from progressd.runner.executors import StepOutcome
from progressd.runner.guards import GuardWaits
from progressd.runner.scenario import PreparedScenario
from progressd.workbook import Field, RollbackReason, Status, Workbook

if TYPE_CHECKING:
    from progressd.runner.core import LeaseInfo, MilestoneHook

__all__ = ["Binding"]

_DONE, _STATUS, _LEASE = Field.DONE, Field.STATUS, Field.LEASE
_ACTIVE, _WAITING = int(Status.ACTIVE), int(Status.WAITING)
_WAITING_FOR_RESOURCE = int(Status.WAITING_FOR_RESOURCE)
_FINAL = frozenset({int(Status.DONE), int(Status.FAILED), int(Status.CANCELLED)})
_REASONS = frozenset(get_args(RollbackReason))


class Binding:
    """The row-level half of ``Runner``: leases, guard waits, milestones, rollbacks."""

    __slots__ = ()

    poller: Poller
    workbook: Workbook
    _first_row: int
    _status: bytearray
    _handles: list[ProgressPollable | None]
    _active: int
    _rollbacks: int
    _guards: GuardWaits
    _lease_info: LeaseInfo | None
    _milestone_hooks: list[MilestoneHook]
    _ranks: dict[str, int]
    _on_resume_cb: Callable[[ProgressPollable], None]
    _on_start: Callable[[ProgressPollable], None]
    _on_resume: Callable[[ProgressPollable], None]
    _scenario_of: Callable[[int], PreparedScenario]
    _set_status: Callable[[int, int], None]
    _drop_handle: Callable[[int], None]

    # -- leases (the resource manager's ProgressBinding) ----------------------------------

    def lease_of(self, row: int) -> Mapping[str, Any] | None:
        lease = int(self.workbook.get(row, _LEASE))
        if lease < 0 or self._lease_info is None:
            return None
        return self._lease_info(row, lease)

    def lease_changed(self, row: int, lease_id: int | None) -> None:
        """``ProgressBinding``: the row now holds ``lease_id``; re-check a guard on ``lease``."""
        self.workbook.set(row, _LEASE, -1 if lease_id is None else lease_id)
        self._guards.touch(row, "lease")

    def mark_waiting_for_resource(self, row: int, waiting: bool) -> None:
        """The row's step waits for a lease (``waiting``: show ``WAITING_FOR_RESOURCE``) or was
        granted one (show ``ACTIVE``); a row that has ended keeps its final status."""
        if self._status[row - self._first_row] not in _FINAL:
            self._set_status(row, _WAITING_FOR_RESOURCE if waiting else _ACTIVE)

    def holder_progress(self, row: int) -> tuple[float, str | None]:
        """``ProgressBinding``: the row's progress ratio and last milestone."""
        sc = self._scenario_of(row)
        done = int(self.workbook.get(row, _DONE))
        ratio = min(1.0, done / sc.work_total) if sc.work_total else 0.0
        milestone = int(self.workbook.get(row, Field.MILESTONE))
        return ratio, None if milestone < 0 else self.workbook.milestones[milestone]

    # -- guards, milestones, executors ----------------------------------------------------

    def _wait_guard(self, row: int, guard: Any) -> None:
        self._set_status(row, _WAITING)
        handle = self.poller.subscribe(
            PollableKind.CONDITION, self._on_resume_cb, row, self._ranks["condition"]
        )
        self._handles[row - self._first_row] = handle
        self._guards.add(row, guard, handle)

    def touch(self, row: int, field: str) -> bool:
        """Mark ``field`` (``vars.x``, ``lease``...) dirty for ``row``: re-check its guard."""
        return self._guards.touch(row, field)

    def add_milestone_hook(self, hook: MilestoneHook) -> None:
        """Call ``hook(row, milestone_name)`` whenever a user reaches a milestone."""
        self._milestone_hooks.append(hook)

    def _reach_milestone(self, row: int, sc: PreparedScenario, p: int) -> None:
        index = sc.milestones[p]
        self.workbook.reach_milestone(row, index)
        name = self.workbook.milestones[index]
        for hook in self._milestone_hooks:
            hook(row, name)

    def complete(self, row: int, outcome: StepOutcome) -> bool:
        """Complete the row's in-flight step (for executors that know only the row).

        Returns ``False`` when the row has no step in flight.
        """
        handle = self._handles[row - self._first_row]
        if handle is None or handle.kind is not PollableKind.COMPLETION:
            return False
        return self.poller.make_ready(handle, outcome)

    # -- resuming from a stable point -----------------------------------------------------

    def rollback_users(self, rows: Any, reason: str) -> None:
        """``ProgressBinding``: roll rows back to their stable point; they resume from there.

        Raises:
            StateError: for an unknown reason.
        """
        if reason not in _REASONS:
            raise StateError(f"unknown rollback reason {reason!r}: one of {sorted(_REASONS)}")
        targets = [r for r in rows if int(self._status[r - self._first_row]) not in _FINAL]
        self.workbook.rollback(targets, reason)  # type: ignore[arg-type]
        for row in targets:
            self._rollbacks += 1  # type: ignore[misc]
            self._drop_handle(row)
            self._handles[row - self._first_row] = self.poller.subscribe_timer(
                self.poller.now, self._on_resume_cb, row, self._ranks["step"]
            )

    def _restore_row(self, row: int) -> Callable[[ProgressPollable], None] | None:
        """How a restored row carries on: ``None`` when it had finished."""
        status = int(self.workbook.get(row, _STATUS))
        if status in _FINAL:
            self._status[row - self._first_row] = status
            self._active -= 1  # type: ignore[misc]
            return None
        return self._on_start if self.workbook.stable_milestone(row) < 0 else self._on_resume
