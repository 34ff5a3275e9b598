"""Steps waiting for their user's lease.

A step whose templates read ``lease.*`` cannot be sent while its user holds no lease: the user
is queued for a member (every member full or failing), or between releasing one lease
(``release-on``) and being granted the next. Rather than fail, the step is *parked* here: the
user keeps its one completion pollable, no task, and the step starts when the lease is granted
(``granted(row)``, called from the resource binding) — or fails with class ``no-lease`` when
no lease came within the step's timeout. ``on_wait(row, True)`` is called when a step parks and
``on_wait(row, False)`` when its lease comes: the run shows the user as ``waiting-for-resource``
in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from progressd.runner import StepCall
from progressd.steps.metrics import StepMetrics

__all__ = ["DEFAULT_LEASE_WAIT_S", "LeaseWaits", "fail_no_lease"]

DEFAULT_LEASE_WAIT_S = 30.0
"""How long a step without a timeout of its own waits for its user's lease."""


@dataclass(slots=True, eq=False)
class _Parked:
    call: StepCall
    resume: Callable[[StepCall], None]
    timer: asyncio.TimerHandle


def _resume(parked: _Parked) -> None:
    if not parked.call.cancelled:
        parked.resume(parked.call)


class LeaseWaits:
    """The steps parked until their user holds a lease; at most one per user."""

    __slots__ = ("_loop", "_parked", "granted_count", "on_wait", "timed_out")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_wait: Callable[[int, bool], None] | None = None,
    ) -> None:
        self._loop = loop
        self._parked: dict[int, _Parked] = {}
        self.on_wait = on_wait
        """Told ``(row, True)`` when a step parks and ``(row, False)`` when it is granted."""
        self.granted_count = 0
        self.timed_out = 0

    @property
    def waiting(self) -> int:
        """Users whose step waits for a lease."""
        return len(self._parked)

    def park(
        self,
        call: StepCall,
        timeout_s: float,
        resume: Callable[[StepCall], None],
        expire: Callable[[StepCall], None],
    ) -> None:
        """Hold ``call`` until ``granted(call.row)`` (then ``resume(call)``) or ``timeout_s``
        (then ``expire(call)``). A call parked earlier for the same user is dropped (it was
        abandoned: the user was rolled back or cancelled)."""
        stale = self._parked.pop(call.row, None)
        if stale is not None:
            stale.timer.cancel()
        timer = self._loop.call_later(timeout_s, self._expire, call.row, expire)
        self._parked[call.row] = _Parked(call, resume, timer)
        if self.on_wait is not None:
            self.on_wait(call.row, True)

    def granted(self, row: int) -> bool:
        """``row`` now holds a lease: start its parked step, if any. Whether one was parked."""
        parked = self._parked.pop(row, None)
        if parked is None:
            return False
        parked.timer.cancel()
        if not parked.call.cancelled:
            self.granted_count += 1
            if self.on_wait is not None:
                self.on_wait(row, False)
            # next turn: a grant made while the event bus dispatches is staged in the workbook
            # until the dispatch ends, and the step must see the lease when it renders
            self._loop.call_soon(_resume, parked)
        return True

    def cancel_all(self) -> int:
        """Drop every parked step (the run ended); how many there were."""
        parked, self._parked = self._parked, {}
        for each in parked.values():
            each.timer.cancel()
        return len(parked)

    def _expire(self, row: int, expire: Callable[[StepCall], None]) -> None:
        parked = self._parked.pop(row, None)
        if parked is not None and not parked.call.cancelled:
            self.timed_out += 1
            expire(parked.call)


def fail_no_lease(name: str, metrics: StepMetrics, timeout_s: float, call: StepCall) -> None:
    """The ``expire`` of a parked step (bind the first three with ``partial``): counted as
    ``no-lease`` and failed with the step's name and the time it waited."""
    metrics.end("no-lease")
    call.fail(f"{name}: no lease was granted within {timeout_s:g}s")
