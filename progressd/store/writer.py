"""The SQL of a flush: everything a ``Pending`` holds, written inside one transaction.

Each table gets one ``executemany`` (runs, counted events, detailed events, samples, snapshots);
run updates are one ``UPDATE`` per run; old snapshots beyond the kept number are deleted in the
same transaction that adds the new one, so a run never has zero snapshots on disk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from progressd.store.buffer import Pending

__all__ = ["transaction", "write_pending"]


def transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], int]) -> int:
    """Run ``body`` between ``BEGIN IMMEDIATE`` and ``COMMIT``; roll back if it raises.

    Raises:
        sqlite3.Error: from ``body`` or the commit (after the rollback).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def write_pending(conn: sqlite3.Connection, pending: Pending, snapshots_kept: int) -> int:
    """Insert and update everything in ``pending``; return the rows written."""
    conn.executemany(
        "INSERT INTO runs (id, name, source, source_hash, status, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        pending.runs.values(),
    )
    for run, columns in pending.updates.items():
        # column names come from Store.update_run's allow-list, never from callers' text
        assignments = ", ".join(f"{name} = ?" for name in columns)
        conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*columns.values(), run])
    conn.executemany(
        "INSERT INTO events (run, kind, scenario, milestone, reason, count, first_at, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(*key, t.count, t.first_at, t.at) for key, t in pending.events.items()],
    )
    conn.executemany(
        "INSERT INTO events (run, kind, scenario, milestone, reason, count, first_at, at, "
        "detail) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
        [(*key, at, at, detail) for key, at, detail in pending.detailed],
    )
    conn.executemany(
        "INSERT INTO samples (run, scenario, at, done, total, rate, users_active, "
        "users_done) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        pending.samples,
    )
    _write_snapshots(conn, pending, snapshots_kept)
    return pending.rows


def _write_snapshots(conn: sqlite3.Connection, pending: Pending, kept: int) -> None:
    if not pending.snapshots:
        return
    conn.executemany(
        "INSERT INTO snapshots (run, at, version, data) VALUES (?, ?, ?, ?)",
        pending.snapshots.values(),
    )
    conn.executemany(
        "DELETE FROM snapshots WHERE run = ?1 AND id NOT IN "
        "(SELECT id FROM snapshots WHERE run = ?1 ORDER BY id DESC LIMIT ?2)",
        [(run, kept) for run in pending.snapshots],
    )
