"""Iteration durations (the ``iteration_duration`` threshold metric), timed from the event bus.

The runner reports no iteration ends, but every one writes the row's ``ITERATION`` field, and
the bus turns that into a field event stamped with the poller iteration that collected it (the
event carries which fields changed, not their values: batches may be delivered later, so the
workbook is not read here). An iteration's duration is the time between two such events for a
row; the first is timed from the row's ramp slot (``begin``). A rollback
event restarts the timing and its own field event is not an iteration end. Precision: one
poller iteration. Cost: O(changed rows) per batch, 9 bytes per user.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence

from progressd.events import Batch, EventBus
from progressd.histogram import LatencyHistogram
from progressd.workbook import Field

__all__ = ["IterationTimer"]

_ITER_BIT = Field.ITERATION.mask


class IterationTimer:
    """Records each finished iteration's duration into ``histograms[scenario]``."""

    __slots__ = ("_first", "_histograms", "_rolled", "_since")

    def __init__(
        self,
        first_rows: Sequence[int],
        users: Sequence[int],
        histograms: Sequence[LatencyHistogram],
    ) -> None:
        rows = sum(users)
        self._first = list(first_rows)
        self._histograms = list(histograms)
        self._since = array("d", [-1.0]) * rows
        self._rolled = bytearray(rows)

    def begin(self, now: float, ramps: Sequence[float]) -> None:
        """The run started at ``now``: each row's first iteration starts at its ramp slot
        (``now + ramp * i / users``, as the runner schedules it)."""
        base, since = self._first[0], self._since
        ends = [*self._first[1:], base + len(since)]
        for first, end, ramp in zip(self._first, ends, ramps, strict=True):
            users = end - first
            for i in range(users):
                since[first - base + i] = now + ramp * i / users

    def attach(self, bus: EventBus) -> None:
        bus.subscribe(["field", "rollback"], self.on_batch)

    def on_batch(self, batch: Batch) -> None:
        base, first, since, rolled = self._first[0], self._first, self._since, self._rolled
        single = len(first) == 1
        for event in batch.events:
            local = event.row - base
            at = event.at
            if event.topic == "rollback":
                rolled[local] = 1
                since[local] = at
                continue
            if rolled[local]:  # the rolled-back row's own field event: not an iteration end
                rolled[local] = 0
                since[local] = at
                continue
            if not event.fields & _ITER_BIT:
                continue
            started = since[local]
            since[local] = at
            if started >= 0:
                index = 0 if single else bisect.bisect_right(first, event.row) - 1
                self._histograms[index].record(max(0.0, at - started))
