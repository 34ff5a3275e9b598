"""The store as a daemon extension: opened at startup, flushed on a timer, closed at shutdown.

``install(daemon)`` registers a startup hook that opens ``<state.directory>/progressd.db``
(a bad store stops the start with its ``StoreError``); a background task (a coroutine on the
daemon's loop, no thread) that flushes every ``state.flush-interval``, prunes samples older
than ``state.retention`` in small chunks (one a minute, or one per flush while a backlog
lasts) and has a child process checkpoint the WAL once a minute (``checkpoint.py``); a
shutdown hook that flushes and closes; and a collector for the ``progressd_store_*`` metrics.
Other extensions reach the open store with ``store_of(daemon)``; install the store first so
it opens before runs resume and closes after they snapshot.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from progressd.errors import StateError, StoreError
from progressd.logs import get_logger
from progressd.store.checkpoint import checkpoint_in_subprocess
from progressd.store.core import DB_NAME, PRUNE_CHUNK, Store
from progressd.store.records import COMMIT_BUCKETS

if TYPE_CHECKING:
    from progressd.daemon import Daemon

__all__ = ["StoreCollector", "StoreService", "install", "store_of"]

log = get_logger("progressd.store")

PRUNE_EVERY = 60.0
CHECKPOINT_EVERY = 60.0
_services: weakref.WeakKeyDictionary[Daemon, StoreService] = weakref.WeakKeyDictionary()


class StoreService:
    """Owns the daemon's ``Store`` from startup to shutdown."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.store: Store | None = None
        self._last_prune = 0.0
        self._prune_backlog = False
        self._last_checkpoint = time.monotonic()
        self._checkpointed_commits = 0
        self._checkpoint: asyncio.Task[None] | None = None
        self.checkpoints = 0
        self.checkpoint_failures = 0

    @property
    def path(self) -> Path:
        return Path(self.daemon.config.state.directory) / DB_NAME

    async def start(self) -> None:
        """Open the store and start the flush task.

        Raises:
            StoreError: the store cannot be opened (see ``Store.open``).
        """
        state = self.daemon.config.state
        self.store = Store.open(self.path, snapshots_kept=state.snapshots_kept)
        stats = self.store.statistics()
        log.info("store open", path=str(self.path), schema=stats.schema_version)
        self.daemon.spawn(self._flush_forever(), "store-flush")

    async def stop(self) -> None:
        """Flush what is buffered and close the store (runs after the other shutdown hooks)."""
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        store, self.store = self.store, None
        if store is None:
            return
        try:
            store.close()
        except StoreError as exc:
            log.error("final store flush failed; buffered history lost", error=str(exc))
        log.info("store closed", commits=store.statistics().commits)

    def flush_now(self) -> int:
        """One flush (and a prune pass when due); failures are logged, rows kept buffered."""
        store = self.store
        if store is None:
            return 0
        try:
            written = store.flush()
            self._prune_when_due(store)
        except StoreError as exc:
            log.error("store flush failed; will retry", error=str(exc))
            return 0
        self._checkpoint_when_due(store)
        return written

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.daemon.config.state.flush_interval)
            self.flush_now()

    def _checkpoint_when_due(self, store: Store) -> None:
        commits = store.statistics().commits
        running = self._checkpoint is not None and not self._checkpoint.done()
        due = time.monotonic() - self._last_checkpoint >= CHECKPOINT_EVERY
        if running or not due or commits == self._checkpointed_commits:
            return
        self._last_checkpoint = time.monotonic()
        self._checkpointed_commits = commits
        self._checkpoint = self.daemon.spawn(self._checkpoint_out_of_loop(), "store-checkpoint")

    async def _checkpoint_out_of_loop(self) -> None:
        try:
            result = await checkpoint_in_subprocess(str(self.path))
        except StoreError as exc:
            self.checkpoint_failures += 1
            log.warning("checkpoint in a child process failed; checkpointing here", error=str(exc))
            if self.store is None:
                return
            try:
                result = self.store.checkpoint()
            except StoreError as inline:
                log.error("store checkpoint failed", error=str(inline))
                return
        self.checkpoints += 1
        log.debug("store checkpoint", frames=result.checkpointed, seconds=round(result.seconds, 4))

    def _prune_when_due(self, store: Store) -> None:
        """One small prune per flush while there is a backlog, else one a minute."""
        now = time.time()
        if not self._prune_backlog and now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        pruned = store.prune(now - self.daemon.config.state.retention, limit=PRUNE_CHUNK)
        self._prune_backlog = pruned == PRUNE_CHUNK
        if pruned:
            log.debug("pruned old progress samples", rows=pruned, more=self._prune_backlog)


class StoreCollector:
    """``progressd_store_*`` metrics, read from ``Store.statistics()`` at scrape time."""

    def __init__(self, service: StoreService) -> None:
        self._service = service

    def collect(self) -> Iterable[Metric]:
        store = self._service.store
        if store is None:
            return
        stats = store.statistics()
        hist = HistogramMetricFamily(
            "progressd_store_commit_duration_seconds",
            "How long each store flush (one SQLite transaction) held the event loop.",
        )
        buckets = [(f"{b:g}", n) for b, n in zip(COMMIT_BUCKETS, stats.commit_buckets, strict=True)]
        buckets.append(("+Inf", stats.commit_seconds.count))
        hist.add_metric([], buckets, stats.commit_seconds.sum)
        yield hist
        yield CounterMetricFamily(
            "progressd_store_commits", "Store flushes committed.", value=stats.commits
        )
        yield CounterMetricFamily(
            "progressd_store_failed_commits",
            "Store flushes rolled back (rows kept for the next flush).",
            value=stats.failed_commits,
        )
        yield CounterMetricFamily(
            "progressd_store_rows_written",
            "Rows written by store flushes.",
            value=stats.rows_written,
        )
        yield GaugeMetricFamily(
            "progressd_store_buffered_rows",
            "History rows waiting for the next store flush.",
            value=stats.buffered_rows,
        )


def install(daemon: Daemon) -> None:
    """Make ``daemon`` open, flush and close the store; an ``Extension``."""
    service = StoreService(daemon)
    _services[daemon] = service
    daemon.add_startup_hook("store-open", service.start)
    daemon.add_shutdown_hook("store-close", service.stop)
    daemon.telemetry.register(StoreCollector(service))


def store_of(daemon: Daemon) -> Store:
    """The open store of ``daemon``.

    Raises:
        StateError: the store extension is not installed, or the store is not open.
    """
    service = _services.get(daemon)
    if service is None or service.store is None:
        raise StateError("the store is not open: install progressd.store before using it")
    return service.store
