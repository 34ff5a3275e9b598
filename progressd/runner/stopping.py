"""How a run ends: stopping every user, the final state, waiting for it, its figures.

Design note. ``Stopping`` holds the ``Runner`` methods that end a run or report on it:
``cancel`` and ``abort`` (the resource manager's ``ProgressBinding.abort``) stop every user
still running, ``_end`` records the final state and wakes ``wait_finished``, and ``active`` and
``statistics()`` read the counters. They are apart from ``core.py`` because none runs per step:
the hot path reaches ``_end`` once, when its last user finishes, and ``_drop_handle`` runs only
for a stop or a rollback (binding.py).

It is a mixin of ``Runner``: no state of its own (``__slots__ = ()``; every slot is declared on
``Runner``, so the hot path's slot layout is ``Runner``'s alone); the annotations below name
the runner attributes it uses. mypy checks a write against this class's empty ``__slots__``,
hence ``type: ignore[misc]`` on each write to ``state``, ``reason`` and the counters.

Invariants: a run leaves ``running`` once; ``state`` is set before the stopped rows are
finished, so finishing the last of them does not end the run as ``finished``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from progressd.poller import PollableKind, Poller, ProgressPollable
from progressd.runner.guards import GuardWaits
from progressd.runner.stats import RunnerStatistics
from progressd.workbook import Status

if TYPE_CHECKING:
    from progressd.runner.core import RunState

__all__ = ["Stopping"]

_FINAL = frozenset({int(Status.DONE), int(Status.FAILED), int(Status.CANCELLED)})


class Stopping:
    """The ending half of ``Runner``: cancel, abort, wait for the end, report."""

    __slots__ = ()

    state: RunState
    reason: str | None
    poller: Poller
    _first_row: int
    _status: bytearray
    _handles: list[ProgressPollable | None]
    _guards: GuardWaits
    _finished: asyncio.Future[RunState] | None
    _active: int
    _steps_run: int
    _skipped: int
    _failed: int
    _iterations: int
    _in_flight: int
    _rollbacks: int
    _finish: Callable[[int, int], None]

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop every user now: pending handles are cancelled, rows become CANCELLED."""
        self._stop_all(int(Status.CANCELLED), "cancelled", reason)

    def abort(self, reason: str) -> None:
        """Fail the run (``ProgressBinding``): every unfinished row becomes FAILED."""
        self._stop_all(int(Status.FAILED), "failed", reason)

    async def wait_finished(self) -> RunState:
        """Wait until every user is finished, cancelled or failed; return the final state."""
        if self.state in ("finished", "cancelled", "failed"):
            return self.state
        if self._finished is None:
            self._finished = asyncio.get_running_loop().create_future()  # type: ignore[misc]
        return await asyncio.shield(self._finished)

    @property
    def active(self) -> int:
        """Users not yet finished, cancelled or failed."""
        return self._active

    def _drop_handle(self, row: int) -> None:
        local = row - self._first_row
        handle = self._handles[local]
        self._handles[local] = None
        self._guards.discard(row)
        cancelled = handle is not None and self.poller.cancel(handle)
        if cancelled and handle is not None and handle.kind is PollableKind.COMPLETION:
            self._in_flight -= 1  # type: ignore[misc]

    def _stop_all(self, status: int, state: RunState, reason: str) -> None:
        if self.state in ("finished", "cancelled", "failed"):
            return
        # before _finish, so the last row does not end it as "finished"
        self.state = state  # type: ignore[misc]
        for local in range(len(self._handles)):
            if self._status[local] not in _FINAL:
                row = local + self._first_row
                self._drop_handle(row)
                self._finish(row, status)
        self._guards.close()
        self._end(state, reason)

    def _end(self, state: RunState, reason: str | None = None) -> None:
        self.state = state  # type: ignore[misc]
        self.reason = reason  # type: ignore[misc]
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(state)

    def statistics(self) -> RunnerStatistics:
        return RunnerStatistics(
            state=self.state,
            users=len(self._handles),
            active=self._active,
            steps_run=self._steps_run,
            steps_skipped=self._skipped,
            steps_failed=self._failed,
            iterations=self._iterations,
            in_flight=self._in_flight,
            waiting_guards=len(self._guards),
            guard_rechecks=self._guards.rechecks,
            rollbacks=self._rollbacks,
        )
