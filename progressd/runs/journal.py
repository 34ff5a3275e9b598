"""A run's event journal: what ``GET /v1/runs/{run}/events`` streams besides progress ticks.

Design note. The journal subscribes one callback to the run's event bus (topics ``milestone``
and ``rollback``) and turns each delivered batch into a few aggregated lines — one
``MilestoneEvent`` per milestone reached in the batch, one ``RollbackEvent`` per reason — so a
thousand users passing a milestone in one flush cost one line, not a thousand. State changes
(submitted, paused, resumed, cancel requested, ended) are recorded by the manager.

Lines are kept in a bounded deque (``max_lines``, oldest dropped) and numbered, so any number
of streams read the same journal with their own cursor (``since(cursor)``) and a newcomer gets
the retained history first. Readers wait on ``wait_change(within)``: a fresh future per wait,
resolved by the next append or by ``close``. The callback runs inside the bus dispatch; it
only appends, never writes the workbook.

Invariants: sequence numbers grow by one per line; ``since`` never returns a line twice to a
cursor it advanced; once ``closed``, nothing is appended.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque

from progressd.events import Batch, Subscription
from progressd.runs.messages import (
    EndEvent,
    MilestoneEvent,
    RollbackEvent,
    RunEvent,
    StateEvent,
)
from progressd.runs.run import Run
from progressd.summary import RunState, RunSummary

__all__ = ["DEFAULT_MAX_LINES", "RunJournal"]

DEFAULT_MAX_LINES = 1_000


class RunJournal:
    """The retained event lines of one run (see the module note)."""

    def __init__(self, run: Run, *, max_lines: int = DEFAULT_MAX_LINES) -> None:
        self._run: Run | None = run
        self._lines: deque[tuple[int, RunEvent]] = deque(maxlen=max_lines)
        self._next = 0
        self._waiters: list[asyncio.Future[None]] = []
        self.end: EndEvent | None = None
        self._subscription: Subscription | None = run.bus.subscribe(
            ("milestone", "rollback"), self._on_batch
        )

    @property
    def closed(self) -> bool:
        return self.end is not None

    def record_state(self, state: RunState, reason: str | None = None) -> None:
        """Append a ``StateEvent`` (no-op once closed)."""
        self._append(StateEvent(state=state, reason=reason, elapsed_s=self._elapsed()))

    def close(self, summary: RunSummary, reason: str | None = None) -> None:
        """The run ended: record its final state, keep ``summary``, let go of the run and wake
        every reader."""
        if self.closed or self._run is None:
            return
        self.record_state(summary.state, reason)
        self.end = EndEvent(summary=summary)
        if self._subscription is not None:
            self._run.bus.unsubscribe(self._subscription)
            self._subscription = None
        self._run = None
        self._wake()

    def since(self, cursor: int) -> tuple[list[RunEvent], int]:
        """Lines numbered ``cursor`` or later still retained, and the cursor after them."""
        lines = [event for seq, event in self._lines if seq >= cursor]
        return lines, self._next

    async def wait_change(self, within: float) -> None:
        """Return when a line is appended, the journal closes, or ``within`` seconds pass."""
        if self.closed:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait([waiter], timeout=within)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    # -- internals ----------------------------------------------------------------------------

    def _elapsed(self) -> float:
        return 0.0 if self._run is None else round(self._run.figures.elapsed_s(), 3)

    def _append(self, event: RunEvent) -> None:
        if self.closed:
            return
        self._lines.append((self._next, event))
        self._next += 1
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _on_batch(self, batch: Batch) -> None:
        if self._run is None:
            return
        names = self._run.workbook.milestones
        reached: Counter[str] = Counter()
        rolled: Counter[str] = Counter()
        undone: Counter[str] = Counter()
        for event in batch.events:
            if event.topic == "milestone" and 0 <= event.milestone < len(names):
                reached[names[event.milestone]] += 1
            elif event.topic == "rollback":
                reason: str = event.reason or "unknown"
                rolled[reason] += 1
                undone[reason] += event.undone
        elapsed = self._elapsed()
        for name, users in reached.items():
            self._append(MilestoneEvent(milestone=name, users=users, elapsed_s=elapsed))
        for reason, users in rolled.items():
            self._append(
                RollbackEvent(reason=reason, users=users, undone=undone[reason], elapsed_s=elapsed)
            )
