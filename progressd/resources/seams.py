"""The seams between the resource manager and the rest of progressd.

The resource manager is a self-contained core. It reaches the outside only through the three
Protocols below, which the runner, the poller and the event bus implement:

- ``Scheduler``: run a callback at a time, in a priority class. The poller implements it with
  one ``progress_pollable`` per call (a health-check-due or lease-expiry handle);
  ``scheduling.LoopScheduler`` is a plain-loop default and ``scheduling.FakeScheduler`` the test
  double. Health checks are never one task per member per interval: each member has at most one
  pending scheduler entry, and a check in flight holds exactly one awaitable.
- ``ProgressBinding``: the two-way binding between leases and users' progress. The manager calls
  it to tell the runner that a row's lease changed, to roll rows back to their last stable point,
  or to abort the run; it asks it for a holder's progress so a lease can show it.
- ``EventSink``: where check results, member transitions, expiries and failure actions go (the
  event bus subscribes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from progressd.resources.records import ResourceEvent


class Cancellable(Protocol):
    """A scheduled call that can be withdrawn before it runs."""

    def cancel(self) -> object: ...


class Scheduler(Protocol):
    """Runs ``callback`` once, at or after ``when`` (the clock's timebase), in a priority class.

    ``priority_class`` names a class of ``progress.poller.priorities`` (``health``,
    ``milestone``, ``step``, ``telemetry``); among handles ready at once, the more urgent
    class runs first. ``kind`` says what the call is (``health``: a member's check is due;
    ``lease-expiry``), as the poller's ``PollableKind`` values do.
    """

    def call_at(
        self,
        when: float,
        callback: Callable[[], None],
        priority_class: str,
        kind: str = "timer",
    ) -> Cancellable: ...


class ProgressBinding(Protocol):
    """What the resource manager needs from the runner (the user-progress side).

    The manager calls it only once its own state is consistent, so an implementation may call
    back into the manager (e.g. ``acquire`` again on ``lease_changed(row, None)``).
    """

    def lease_changed(self, row: int, lease_id: int | None) -> None:
        """The row now holds ``lease_id`` (``None``: no lease; it waits or re-leases)."""

    def rollback_users(self, rows: Sequence[int], reason: str) -> None:
        """Roll every row back to its last stable point and record ``reason``, a rollback
        reason code (``health-check-failed``, see ``records.ROLLBACK_CODE``)."""

    def abort(self, rows: Sequence[int], reason: str) -> None:
        """Fail the run (or, through a ``RunRouter``, the runs) that ``rows`` belong to,
        recording ``reason``. ``rows`` may be empty: the member had no holders."""

    def holder_progress(self, row: int) -> tuple[float, str | None]:
        """The row's progress ratio (0..1) and the last milestone it reached."""


class EventSink(Protocol):
    """Receives resource events in the order they happen."""

    def emit(self, event: ResourceEvent) -> None: ...


class NullSink:
    """An ``EventSink`` that drops everything."""

    __slots__ = ()

    def emit(self, event: ResourceEvent) -> None:
        return None


class ListSink:
    """An ``EventSink`` that keeps every event in ``events`` (tests, the one-shot CLI)."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[ResourceEvent] = []

    def emit(self, event: ResourceEvent) -> None:
        self.events.append(event)


class RecordingBinding:
    """A ``ProgressBinding`` that records what the manager asked (tests, benchmarks).

    ``leases`` maps each row to its current lease id (rows without one are absent); progress
    reported through ``holder_progress`` is whatever was put in ``progress``.
    """

    __slots__ = ("aborts", "changes", "leases", "progress", "rollbacks")

    def __init__(self) -> None:
        self.leases: dict[int, int] = {}
        self.changes = 0
        self.rollbacks: list[tuple[tuple[int, ...], str]] = []
        self.aborts: list[tuple[tuple[int, ...], str]] = []
        self.progress: dict[int, tuple[float, str | None]] = {}

    def lease_changed(self, row: int, lease_id: int | None) -> None:
        self.changes += 1
        if lease_id is None:
            self.leases.pop(row, None)
        else:
            self.leases[row] = lease_id

    def rollback_users(self, rows: Sequence[int], reason: str) -> None:
        self.rollbacks.append((tuple(rows), reason))

    def abort(self, rows: Sequence[int], reason: str) -> None:
        self.aborts.append((tuple(rows), reason))

    def holder_progress(self, row: int) -> tuple[float, str | None]:
        return self.progress.get(row, (0.0, None))
