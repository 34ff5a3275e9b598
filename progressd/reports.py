"""The mailbox of the ``external`` step: progress reports sent by other programs.

Design note. Another program reports through the control API (``POST /v1/runs/{run}/reports``,
many reports per request) with a ``key``, optionally a ``user`` row, optionally ``done``/``total``
and a JSON ``payload``. A user whose step waits on a key registers a waiter ``(row, key,
deadline)``; the mailbox calls it back, so no task waits.

Matching. A report with ``user`` N is for row N only. A report without ``user`` is for every
row: it releases all rows waiting on the key at that moment; if none waits, it is kept for the
next one. A report with ``done < total`` is progress: it goes to the waiter's ``on_progress``
and the wait goes on. Any other report (no total, or ``done >= total``) is final: it ends the
wait through ``on_report``.

Reports nobody waits for are kept, so a reporter faster than the user loses nothing. At most
``max_pending`` reports are kept (default 10,000); beyond that the oldest is dropped and counted
in ``statistics().dropped``. Consecutive progress reports for one (key, user) coalesce into the
latest. A waiter that finds kept reports gets them on the next loop turn (``call_at(now)``),
never re-entrantly from inside ``wait()``.

Invariants: a row has at most one wait per key; every waiter's callbacks run at most once for
``on_report``/``on_timeout`` together; the globally oldest kept report is the front of its own
(key, user) queue.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from progressd.errors import StateError
from progressd.scheduling import Scheduler, TimerHandle

DEFAULT_MAX_PENDING = 10_000
MAX_BATCH = 10_000


class Report(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One external progress report. ``done``/``total`` come together or not at all."""

    key: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    user: Annotated[int, msgspec.Meta(ge=0)] | None = None
    done: Annotated[float, msgspec.Meta(ge=0)] | None = None
    total: Annotated[float, msgspec.Meta(gt=0)] | None = None
    payload: Any = None

    def __post_init__(self) -> None:
        if (self.done is None) != (self.total is None):
            raise ValueError("give done and total together, or neither")
        if self.done is not None and self.total is not None and self.done > self.total:
            raise ValueError(f"done ({self.done:g}) cannot exceed total ({self.total:g})")

    @property
    def final(self) -> bool:
        """True unless this is a progress report (``done < total``)."""
        return self.done is None or self.total is None or self.done >= self.total


class ReportBatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/runs/{run}/reports``."""

    reports: Annotated[list[Report], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class DeliveryCount(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What ``deliver`` did with a batch: handed to waiters, kept for later, dropped (old)."""

    matched: int
    kept: int
    dropped: int


class MailboxStatistics(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    waiting: int
    pending: int
    delivered: int
    dropped: int
    timed_out: int


_BATCH_DECODER = msgspec.json.Decoder(ReportBatch)
_BATCH_SHAPE = '{"reports": [{"key": "build", "user": 3, "done": 5, "total": 10}]}'


def decode_report_batch(body: bytes) -> ReportBatch:
    """Decode a report batch request body.

    Raises:
        ValueError: naming the faulty field (``$.reports[2].user``) and the expected shape.
    """
    try:
        return _BATCH_DECODER.decode(body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid report batch: {exc}; expected {_BATCH_SHAPE}") from None


@dataclass(slots=True, eq=False)
class ReportWait:
    """A row waiting for a report on ``key``. ``cancel()`` drops it without a callback."""

    row: int
    key: str
    on_report: Callable[[Report], object]
    on_timeout: Callable[[], object]
    on_progress: Callable[[Report], object] | None
    mailbox: ReportMailbox
    timers: list[TimerHandle] = field(default_factory=list)
    active: bool = True

    def cancel(self) -> None:
        self.mailbox._end(self)


class ReportMailbox:
    """Matches external reports with waiting rows. See the module note.

    Raises:
        ValueError: from the constructor when ``max_pending`` is below 1.
    """

    __slots__ = (
        "_delivered",
        "_dropped",
        "_kept",
        "_max",
        "_queues",
        "_scheduler",
        "_seq",
        "_timed_out",
        "_waiters",
    )

    def __init__(self, scheduler: Scheduler, *, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self._scheduler = scheduler
        self._max = max_pending
        self._waiters: dict[str, dict[int, ReportWait]] = {}
        self._kept: dict[int, Report] = {}
        self._queues: dict[tuple[str, int | None], deque[int]] = {}
        self._seq = itertools.count()
        self._delivered = self._dropped = self._timed_out = 0

    def deliver(self, reports: Iterable[Report]) -> DeliveryCount:
        """Hand each report to its waiter(s) or keep it; in order."""
        matched = kept = 0
        dropped_before = self._dropped
        for report in reports:
            if self._dispatch(report):
                matched += 1
            else:
                self._keep(report)
                kept += 1
        return DeliveryCount(matched=matched, kept=kept, dropped=self._dropped - dropped_before)

    def wait(
        self,
        *,
        row: int,
        key: str,
        deadline: float | None,
        on_report: Callable[[Report], object],
        on_timeout: Callable[[], object],
        on_progress: Callable[[Report], object] | None = None,
    ) -> ReportWait:
        """Wait for a final report for ``row`` on ``key`` until ``deadline`` (scheduler time).

        Raises:
            StateError: when ``row`` already waits on ``key``.
        """
        rows = self._waiters.setdefault(key, {})
        if row in rows:
            raise StateError(f'user {row} already waits for a report on "{key}"')
        waiter = ReportWait(row, key, on_report, on_timeout, on_progress, self)
        rows[row] = waiter
        if deadline is not None:
            waiter.timers.append(self._scheduler.call_at(deadline, lambda: self._expire(waiter)))
        if self._has_pending(row, key):
            waiter.timers.append(
                self._scheduler.call_at(self._scheduler.time(), lambda: self._replay(waiter))
            )
        return waiter

    def take_nowait(self, *, row: int, key: str) -> Report | None:
        """The first kept final report for ``row`` on ``key``, consumed; progress before it is
        discarded. ``None`` when there is none."""
        while (report := self._pop_pending(row, key)) is not None:
            if report.final:
                self._delivered += 1
                return report
        return None

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(
            waiting=sum(len(rows) for rows in self._waiters.values()),
            pending=len(self._kept),
            delivered=self._delivered,
            dropped=self._dropped,
            timed_out=self._timed_out,
        )

    def _dispatch(self, report: Report) -> bool:
        rows = self._waiters.get(report.key)
        if not rows:
            return False
        if report.user is not None:
            waiter = rows.get(report.user)
            if waiter is None:
                return False
            self._hand(waiter, report)
            return True
        for waiter in list(rows.values()):
            self._hand(waiter, report)
        return True

    def _hand(self, waiter: ReportWait, report: Report) -> None:
        if not waiter.active:
            return
        self._delivered += 1
        if not report.final:
            if waiter.on_progress is not None:
                waiter.on_progress(report)
            return
        self._end(waiter)
        waiter.on_report(report)

    def _replay(self, waiter: ReportWait) -> None:
        while waiter.active and (report := self._pop_pending(waiter.row, waiter.key)) is not None:
            self._hand(waiter, report)

    def _expire(self, waiter: ReportWait) -> None:
        self._replay(waiter)  # a report kept before the deadline wins over the timeout
        if waiter.active:
            self._end(waiter)
            self._timed_out += 1
            waiter.on_timeout()

    def _end(self, waiter: ReportWait) -> None:
        if not waiter.active:
            return
        waiter.active = False
        for timer in waiter.timers:
            timer.cancel()
        rows = self._waiters.get(waiter.key)
        if rows is not None and rows.get(waiter.row) is waiter:
            del rows[waiter.row]
            if not rows:
                del self._waiters[waiter.key]

    def _keep(self, report: Report) -> None:
        queue = self._queues.setdefault((report.key, report.user), deque())
        if not report.final and queue and not self._kept[queue[-1]].final:
            del self._kept[queue.pop()]
        seq = next(self._seq)
        queue.append(seq)
        self._kept[seq] = report
        if len(self._kept) > self._max:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        seq = next(iter(self._kept))
        report = self._kept.pop(seq)
        where = (report.key, report.user)
        queue = self._queues[where]
        assert queue[0] == seq, "the oldest kept report heads its queue"
        queue.popleft()
        if not queue:
            del self._queues[where]
        self._dropped += 1

    def _has_pending(self, row: int, key: str) -> bool:
        return (key, row) in self._queues or (key, None) in self._queues

    def _pop_pending(self, row: int, key: str) -> Report | None:
        own, shared = self._queues.get((key, row)), self._queues.get((key, None))
        where: tuple[str, int | None]
        if own and (not shared or own[0] < shared[0]):
            where, queue = (key, row), own
        elif shared:
            where, queue = (key, None), shared
        else:
            return None
        report = self._kept.pop(queue.popleft())
        if not queue:
            del self._queues[where]
        return report
