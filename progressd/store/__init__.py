"""progressd's persistent history: one SQLite file (WAL) under the state directory.

``Store`` buffers appends in memory and commits them in one transaction per ``flush()``;
``install(daemon)`` wires it into the daemon (open at startup, periodic flush, close at
shutdown, ``progressd_store_*`` metrics); ``store_of(daemon)`` gives other extensions the open
store. See ``core`` for the design note and docs/operations.md for backups.
"""

from __future__ import annotations

from progressd.store.core import DB_NAME, EventTuple, Store
from progressd.store.records import (
    EVENT_KINDS,
    EventKind,
    EventRecord,
    RunRecord,
    SampleRecord,
    SnapshotRecord,
    StoreStatistics,
)
from progressd.store.schema import MIGRATIONS, SCHEMA_VERSION, Migration
from progressd.store.service import StoreService, install, store_of

__all__ = [
    "DB_NAME",
    "EVENT_KINDS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "EventKind",
    "EventRecord",
    "EventTuple",
    "Migration",
    "RunRecord",
    "SampleRecord",
    "SnapshotRecord",
    "Store",
    "StoreService",
    "StoreStatistics",
    "install",
    "store_of",
]
