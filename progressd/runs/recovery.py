"""Wiring run persistence into the daemon: recover at startup, snapshot before shutdown.

``install_persistence(daemon, manager)`` (called by the runs extension) adds:

- a startup hook that opens ``RunPersistence`` over the store (installed before the runs, so
  already open), resumes or interrupts the runs the store says were running, and commits that;
- a background task that records due samples and snapshots every ``state.flush-interval``;
- a stopping hook, run before the runs are cancelled, that snapshots every live run and
  commits, so a SIGTERM keeps every stable point;
- the Prometheus collector of the runs' metrics (``progressd/metrics.py``).

Without the store extension the runs work as before, without history or recovery.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from progressd.errors import StateError
from progressd.logs import get_logger
from progressd.metrics import RunsCollector
from progressd.runs.persistence import RunPersistence
from progressd.store import store_of

if TYPE_CHECKING:
    from progressd.daemon import Daemon
    from progressd.runs.manager import RunManager

__all__ = ["install_persistence", "persistence_of"]

log = get_logger("progressd.runs")

_persistences: weakref.WeakKeyDictionary[Daemon, RunPersistence] = weakref.WeakKeyDictionary()


def persistence_of(daemon: Daemon) -> RunPersistence | None:
    """The daemon's ``RunPersistence`` once started (``None`` without a store)."""
    return _persistences.get(daemon)


def install_persistence(daemon: Daemon, manager: RunManager) -> None:
    """Keep ``manager``'s runs in the daemon's store and resume them after a restart."""

    async def start() -> None:
        try:
            store = store_of(daemon)
        except StateError:
            log.warning("no store installed: runs are not persisted nor recovered")
            return
        persistence = _persistences[daemon] = RunPersistence(manager, store, daemon.config)
        handled = persistence.recover()
        persistence.flush()
        if handled:
            log.info(
                "recovery done",
                mode=daemon.config.recovery.on_start,
                resumed=persistence.resumed,
                interrupted=persistence.interrupted,
            )
        daemon.spawn(persistence.run_forever(), "runs-persistence")

    def snapshot_all() -> None:
        persistence = _persistences.get(daemon)
        if persistence is None:
            return
        count = persistence.snapshot_all()
        persistence.flush()
        if count:
            log.info("stable state snapshotted before shutdown", runs=count)

    daemon.add_startup_hook("runs-recover", start)
    daemon.add_stopping_hook("runs-snapshot", snapshot_all)
    daemon.telemetry.register(RunsCollector(manager, lambda: _persistences.get(daemon)))
