"""The store's in-memory write buffer: appends cost a dict update, never SQL.

Design note. Callers record history as it happens; ``WriteBuffer`` keeps it in the shape the
next flush inserts. Events without detail aggregate by (run, kind, scenario, milestone,
reason) into one counted row per flush, so 10,000 users reaching a milestone in one window is
one row, not 10,000. Samples are appended as row tuples. Only the newest unflushed snapshot of
a run is kept: an older one is superseded before it was ever written. Run inserts and updates
are kept per run, updates merged column by column (last writer wins).

``take()`` hands everything to a flush and empties the buffer; ``give_back()`` returns it when
the flush rolled back, merging with what arrived meanwhile, so a failed commit loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EventKey = tuple[str, str, str, str, str]  # run, kind, scenario, milestone, reason
SampleRow = tuple[str, str, float, int, int, float, int, int]
RunRow = tuple[str, str, str, str, str, float]  # id, name, source, hash, status, created_at
SnapshotRow = tuple[str, float, int, bytes]  # run, at, version, data


@dataclass(slots=True)
class EventTally:
    """Events of one key in one flush window."""

    count: int
    first_at: float
    at: float


@dataclass(slots=True)
class Pending:
    """Everything one flush writes, in the order it is written."""

    runs: dict[str, RunRow] = field(default_factory=dict)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[EventKey, EventTally] = field(default_factory=dict)
    detailed: list[tuple[EventKey, float, str]] = field(default_factory=list)
    samples: list[SampleRow] = field(default_factory=list)
    snapshots: dict[str, SnapshotRow] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return (
            len(self.runs)
            + len(self.updates)
            + len(self.events)
            + len(self.detailed)
            + len(self.samples)
            + len(self.snapshots)
        )


class WriteBuffer:
    """Accumulates history until the next flush takes it."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = Pending()

    @property
    def rows(self) -> int:
        """Rows the next flush will write."""
        return self._pending.rows

    def add_run(self, row: RunRow) -> None:
        self._pending.runs[row[0]] = row

    def update_run(self, run: str, columns: dict[str, Any]) -> None:
        updates = self._pending.updates
        if run in updates:
            updates[run].update(columns)
        else:
            updates[run] = dict(columns)

    def add_event(self, key: EventKey, count: int, at: float) -> None:
        tally = self._pending.events.get(key)
        if tally is None:
            self._pending.events[key] = EventTally(count, at, at)
            return
        tally.count += count
        # compares beat min()/max() calls on this per-event path
        if at < tally.first_at:  # noqa: PLR1730
            tally.first_at = at
        if at > tally.at:  # noqa: PLR1730
            tally.at = at

    def add_detailed_event(self, key: EventKey, at: float, detail: str) -> None:
        self._pending.detailed.append((key, at, detail))

    def add_sample(self, row: SampleRow) -> None:
        self._pending.samples.append(row)

    def add_snapshot(self, row: SnapshotRow) -> None:
        self._pending.snapshots[row[0]] = row

    def take(self) -> Pending:
        """Everything buffered; the buffer starts empty again."""
        taken, self._pending = self._pending, Pending()
        return taken

    def give_back(self, old: Pending) -> None:
        """Put back what a failed flush took, ahead of anything recorded since."""
        new, self._pending = self._pending, old
        for run_row in new.runs.values():
            self.add_run(run_row)
        for run, columns in new.updates.items():
            self.update_run(run, columns)
        for key, tally in new.events.items():
            self.add_event(key, tally.count, tally.first_at)
            self.add_event(key, 0, tally.at)
        old.detailed.extend(new.detailed)
        old.samples.extend(new.samples)
        old.snapshots.update(new.snapshots)
