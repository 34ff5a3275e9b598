"""The progress event bus: turns workbook changes into batched, in-order events.

Design note. Nothing polls users for change. Writes to the workbook set dirty bits and append
milestone/rollback journal entries; ``EventBus.flush_due(now)``, called by the poller once per
iteration, takes those changes (O(changed rows)), turns them into ``ProgressEvent``s and
delivers them to subscribers in ``Batch``es according to ``progress.batching``:

- ``max-batch-size``: a batch never holds more events; reaching it flushes at once.
- ``flush-interval``: pending events wait at most this long (from the first uncollected change).
- ``priority-threshold``: an event at or above it flushes everything pending, in order.

Invariants: batches carry consecutive sequence numbers and every subscriber sees its batches in
that order; an event is delivered exactly once to each subscriber whose topics it matches;
nothing is dropped. Delivery runs inside ``Workbook.dispatching()``, so a subscriber may write
back into the workbook: its writes are staged and merged when the batch is delivered, and show
up as events in a later batch.

Back-pressure. A queue subscriber (``subscribe(..., max_pending=N)``) holds at most N undelivered
batches. While one is full the bus stops flushing and stops collecting: changes stay in the
workbook, where dirty bits coalesce per row, so memory does not grow with the write rate. Stall
count and time are in ``statistics()``.

Records. The config, event, batch and statistics types and the topic names are defined in
``event_records.py`` and re-exported here; this module holds the bus and its subscriptions.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from progressd.clock import Clock
from progressd.errors import StateError
from progressd.event_records import (
    DEFAULT_PRIORITIES,
    TOPICS,
    Batch,
    BatchingConfig,
    BusStatistics,
    FlushReason,
    Priority,
    ProgressEvent,
    Topic,
)
from progressd.workbook import RollbackReason, Workbook
from progressd.workbook.fields import ERROR_MASK, LEASE_MASK

_log = logging.getLogger(__name__)

_SPECIAL_MASK: Final = ERROR_MASK | LEASE_MASK


Callback = Callable[[Batch], None]


@dataclass(slots=True, eq=False)
class Subscription:
    """A subscriber: a callback run during dispatch, or a bounded queue read with
    ``pop_nowait()`` / ``await wait_batch()``."""

    topics: frozenset[str]
    callback: Callback | None
    max_pending: int | None
    bus: EventBus
    queue: deque[Batch] = field(default_factory=deque)
    waiter: asyncio.Future[None] | None = None
    max_depth: int = 0

    @property
    def full(self) -> bool:
        return self.max_pending is not None and len(self.queue) >= self.max_pending

    def pop_nowait(self) -> Batch | None:
        """The oldest undelivered batch, or ``None``."""
        if not self.queue:
            return None
        was_full = self.full
        batch = self.queue.popleft()
        if was_full:
            self.bus._notify()
        return batch

    async def wait_batch(self) -> Batch:
        """Wait for and take the oldest batch (a fresh future per wait)."""
        while not self.queue:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        batch = self.pop_nowait()
        assert batch is not None
        return batch

    def _offer(self, batch: Batch) -> None:
        if self.callback is not None:
            self.callback(batch)
            return
        self.queue.append(batch)
        self.max_depth = max(self.max_depth, len(self.queue))
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class EventBus:
    """Batches the workbook's changes into events and publishes them by topic.

    Drive it from the poller: call ``flush_due(clock.now())`` every iteration and sleep no later
    than ``next_deadline()``; set ``on_wake`` to be told when new changes arrive or a stalled
    queue drains. No task of its own.
    """

    def __init__(
        self,
        workbook: Workbook,
        clock: Clock,
        config: BatchingConfig | None = None,
        *,
        priorities: Mapping[str, Priority] | None = None,
    ) -> None:
        self.workbook = workbook
        self.clock = clock
        self.config = config or BatchingConfig()
        self._priorities = {**DEFAULT_PRIORITIES, **(priorities or {})}
        self._subscriptions: list[Subscription] = []
        self._pending: deque[ProgressEvent] = deque()
        self._pending_since: float | None = None
        self._changes_since: float | None = None
        self._urgent = 0
        self._event_seq = 0
        self._batch_seq = 0
        self._delivered = 0
        self._max_pending = 0
        self._flushes = {"size": 0, "interval": 0, "priority": 0, "explicit": 0}
        self._stalls = 0
        self._stall_seconds = 0.0
        self._stalled_since: float | None = None
        self._subscriber_errors = 0
        self.on_wake: Callable[[], None] | None = None
        """Called when the workbook gains changes or a full queue subscriber drains."""
        workbook.on_change = self._wake
        if workbook.has_changes:
            self._changes_since = clock.now()

    def subscribe(
        self,
        topics: Iterable[str],
        callback: Callback | None = None,
        *,
        max_pending: int | None = None,
    ) -> Subscription:
        """Subscribe to ``topics``. With ``callback`` it runs during dispatch (it may write
        back into the workbook; writes merge after the batch). Without one, batches queue on
        the returned ``Subscription``; ``max_pending`` bounds that queue (back-pressure).

        Raises:
            StateError: for an unknown topic, or both or neither of callback and queue use.
        """
        wanted = frozenset(topics)
        if not wanted or wanted - TOPICS:
            raise StateError(f"unknown topics {sorted(wanted - TOPICS)}: use {sorted(TOPICS)}")
        if callback is not None and max_pending is not None:
            raise StateError("a callback subscriber has no queue; drop max_pending")
        if max_pending is not None and max_pending < 1:
            raise StateError(f"max_pending must be >= 1, got {max_pending}")
        sub = Subscription(wanted, callback, max_pending, self)
        self._subscriptions.append(sub)
        return sub

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering to ``subscription`` (its queued batches stay readable)."""
        self._subscriptions = [s for s in self._subscriptions if s is not subscription]

    @property
    def stalled(self) -> bool:
        """Whether a queue subscriber is full, so flushing waits."""
        return any(s.full for s in self._subscriptions)

    def flush_due(self, now: float) -> int:
        """Collect the workbook's changes and deliver the batches that are due; return how
        many batches were delivered (0 while back-pressure holds)."""
        if self._refuse_stalled(now):
            return 0
        self._collect(now)
        delivered = 0
        if self._urgent:
            delivered += self._flush_pending("priority", now)
        size = self.config.max_batch_size
        while len(self._pending) >= size and self._flush_batch("size", now):
            delivered += 1
        since = self._pending_since
        if since is not None and now - since >= self.config.flush_interval:
            delivered += self._flush_pending("interval", now)
        return delivered

    def flush(self, now: float, *, force: bool = False) -> int:
        """Collect and deliver everything now (``force`` ignores back-pressure, for shutdown
        drains: full queues then grow past ``max_pending`` rather than lose batches)."""
        if not force and self._refuse_stalled(now):
            return 0
        self._collect(now)
        return self._flush_pending("explicit", now, force=force)

    def next_deadline(self) -> float | None:
        """When ``flush_due`` next has work: now if the workbook has uncollected changes, the
        interval deadline of pending events, or ``None`` (idle or stalled)."""
        if self.stalled:
            return None
        if self.workbook.has_changes:
            return self.clock.now()
        if self._pending_since is None:
            return None
        return self._pending_since + self.config.flush_interval

    def statistics(self) -> BusStatistics:
        queued = [len(s.queue) for s in self._subscriptions]
        return BusStatistics(
            events_collected=self._event_seq,
            events_delivered=self._delivered,
            batches=self._batch_seq,
            flushes=dict(self._flushes),
            pending=len(self._pending),
            max_pending=self._max_pending,
            stalls=self._stalls,
            stall_seconds=self._stall_seconds,
            queued_batches=sum(queued),
            max_queue_depth=max((s.max_depth for s in self._subscriptions), default=0),
            subscriber_errors=self._subscriber_errors,
        )

    # -- internals -----------------------------------------------------------------------

    def _wake(self) -> None:
        if self._changes_since is None:
            self._changes_since = self.clock.now()
        self._notify()

    def _notify(self) -> None:
        if self.on_wake is not None:
            self.on_wake()

    def _refuse_stalled(self, now: float) -> bool:
        if self.stalled:
            self._note_stall(now)
            return True
        if self._stalled_since is not None:
            self._stall_seconds += now - self._stalled_since
            self._stalled_since = None
        return False

    def _collect(self, now: float) -> None:
        if not self.workbook.has_changes:
            return
        changes = self.workbook.take_changes()
        since = now if self._changes_since is None else min(self._changes_since, now)
        self._changes_since = None
        threshold = self.config.priority_threshold
        pending = self._pending
        for entry in changes.journal:
            event = self._event(
                entry.kind,
                entry.row,
                entry.version,
                since,
                milestone=entry.milestone,
                reason=entry.reason,
                undone=entry.undone,
            )
            if event.priority >= threshold:
                self._urgent += 1
            pending.append(event)
        self._collect_rows(changes.rows, since)
        self._max_pending = max(self._max_pending, len(pending))
        if self._pending_since is None and pending:
            self._pending_since = pending[0].at

    def _collect_rows(self, rows: list[tuple[int, int, int]], now: float) -> None:
        """Queue a field event per changed row, then an error and a lease event for a row whose
        mask holds those fields. The bus's hot loop (one event per changed row), so it builds
        field events itself rather than through ``_event``."""
        seq = self._event_seq
        field_priority = self._priorities["field"]
        append = self._pending.append
        for row, mask, version in rows:
            append(
                ProgressEvent(
                    seq=seq,
                    topic="field",
                    row=row,
                    version=version,
                    priority=field_priority,
                    at=now,
                    fields=mask,
                )
            )
            seq += 1
            if mask & _SPECIAL_MASK:
                self._event_seq = seq
                self._collect_special(row, mask, version, now)
                seq = self._event_seq
        self._event_seq = seq
        if field_priority >= self.config.priority_threshold:
            self._urgent += len(rows)

    def _collect_special(self, row: int, mask: int, version: int, now: float) -> None:
        threshold = self.config.priority_threshold
        for topic, bits in (("error", mask & ERROR_MASK), ("lease", mask & LEASE_MASK)):
            if bits:
                event = self._event(topic, row, version, now, fields=bits)  # type: ignore[arg-type]
                if event.priority >= threshold:
                    self._urgent += 1
                self._pending.append(event)

    def _event(
        self,
        topic: Topic,
        row: int,
        version: int,
        now: float,
        *,
        fields: int = 0,
        milestone: int = -1,
        reason: RollbackReason | None = None,
        undone: int = 0,
    ) -> ProgressEvent:
        seq = self._event_seq
        self._event_seq += 1
        return ProgressEvent(
            seq=seq,
            topic=topic,
            row=row,
            version=version,
            priority=self._priorities[topic],
            at=now,
            fields=fields,
            milestone=milestone,
            reason=reason,
            undone=undone,
        )

    def _take(self, count: int) -> list[ProgressEvent]:
        pending = self._pending
        popleft = pending.popleft
        taken = [popleft() for _ in range(min(count, len(pending)))]
        if self._urgent:  # else no event is urgent: nothing to count
            threshold = self.config.priority_threshold
            self._urgent -= sum(1 for e in taken if e.priority >= threshold)
        self._pending_since = None if not pending else pending[0].at
        return taken

    def _note_stall(self, now: float) -> None:
        if self._stalled_since is None:
            self._stalled_since = now
        self._stalls += 1

    def _flush_pending(self, reason: FlushReason, now: float, *, force: bool = False) -> int:
        delivered = 0
        while self._pending and self._flush_batch(reason, now, force=force):
            delivered += 1
        return delivered

    def _flush_batch(self, reason: FlushReason, now: float, *, force: bool = False) -> bool:
        """Deliver one batch from the pending queue unless a full queue subscriber refuses."""
        if not force and self.stalled:
            self._note_stall(now)
            return False
        self._deliver(self._take(self.config.max_batch_size), reason, now)
        return True

    def _deliver(self, events: list[ProgressEvent], reason: FlushReason, now: float) -> None:
        batch = Batch(seq=self._batch_seq, reason=reason, at=now, events=tuple(events))
        self._batch_seq += 1
        self._flushes[reason] += 1
        self._delivered += len(events)
        try:
            with self.workbook.dispatching():
                for sub in list(self._subscriptions):
                    self._offer(sub, batch)
        except StateError:
            self._subscriber_errors += 1
            _log.exception("a subscriber staged a write the workbook rejected")

    def _offer(self, sub: Subscription, batch: Batch) -> None:
        if not sub.topics >= TOPICS:
            events = tuple(e for e in batch.events if e.topic in sub.topics)
            if not events:
                return
            batch = Batch(seq=batch.seq, reason=batch.reason, at=batch.at, events=events)
        try:
            sub._offer(batch)
        except Exception:
            self._subscriber_errors += 1
            _log.exception("progress event subscriber failed on batch %d", batch.seq)


__all__ = [
    "DEFAULT_PRIORITIES",
    "TOPICS",
    "Batch",
    "BatchingConfig",
    "BusStatistics",
    "EventBus",
    "FlushReason",
    "Priority",
    "ProgressEvent",
    "Subscription",
    "Topic",
]
