"""Per-scenario counts of a run with several scenarios, kept from the event bus.

The workbook's totals are run-wide. For a run of several scenarios the tally keeps, per
scenario, its users by status, its done work and its iterations, incrementally: it subscribes to
the bus's ``field`` events and, for a row whose ``DONE``, ``ITERATION`` or ``STATUS`` bit is
set, reads the new value and adds the difference to the row's scenario. O(changed rows) per
batch, 9 bytes per user of shadow state; reading is O(statuses). Rollbacks restore those
fields through ordinary writes, so they arrive as field events too.

The figures lag the workbook by at most one bus flush interval; ``flush`` the bus before
reading final figures.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence

from progressd.events import Batch, EventBus
from progressd.workbook import Field, Status, Workbook

__all__ = ["ScenarioTally"]

_DONE, _ITER, _STATUS = Field.DONE, Field.ITERATION, Field.STATUS
_WATCHED = _DONE.mask | _ITER.mask | _STATUS.mask
_STATUSES = len(Status)


class ScenarioTally:
    """Users by status, done work and iterations per scenario (rows ``first_rows[i]`` onwards,
    ``users[i]`` of them)."""

    __slots__ = (
        "_done",
        "_first",
        "_iters",
        "_status",
        "_workbook",
        "done",
        "iterations",
        "statuses",
    )

    def __init__(self, workbook: Workbook, first_rows: Sequence[int], users: Sequence[int]) -> None:
        self._workbook = workbook
        self._first = list(first_rows)
        rows = sum(users)
        self._done = array("q", bytes(8 * rows))
        self._iters = array("l", bytes(array("l").itemsize * rows))
        self._status = bytearray(rows)  # Status.PENDING == 0
        self.done = [0] * len(users)
        self.iterations = [0] * len(users)
        self.statuses = [[count] + [0] * (_STATUSES - 1) for count in users]

    def attach(self, bus: EventBus) -> None:
        bus.subscribe(["field"], self.on_batch)

    def on_batch(self, batch: Batch) -> None:
        base = self._first[0]
        wb = self._workbook
        for event in batch.events:
            mask = event.fields
            if not mask & _WATCHED:
                continue
            row = event.row
            local = row - base
            index = bisect.bisect_right(self._first, row) - 1
            if mask & _DONE.mask:
                value = int(wb.get(row, _DONE))
                self.done[index] += value - self._done[local]
                self._done[local] = value
            if mask & _ITER.mask:
                value = int(wb.get(row, _ITER))
                self.iterations[index] += value - self._iters[local]
                self._iters[local] = value
            if mask & _STATUS.mask:
                value = int(wb.get(row, _STATUS))
                counts = self.statuses[index]
                counts[self._status[local]] -= 1
                counts[value] += 1
                self._status[local] = value

    def seed(self) -> None:
        """Read every row once (a run restored from a snapshot: its rows were filled without
        field events). O(users), called once before the run starts."""
        wb = self._workbook
        base = self._first[0]
        for index, first in enumerate(self._first):
            end = self._first[index + 1] if index + 1 < len(self._first) else base + len(self._done)
            for row in range(first, end):
                local = row - base
                done, iteration = int(wb.get(row, _DONE)), int(wb.get(row, _ITER))
                status = int(wb.get(row, _STATUS))
                self.done[index] += done - self._done[local]
                self.iterations[index] += iteration - self._iters[local]
                self.statuses[index][self._status[local]] -= 1
                self.statuses[index][status] += 1
                self._done[local], self._iters[local], self._status[local] = done, iteration, status
