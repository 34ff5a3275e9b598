"""Read queries behind the history API and crash recovery; each returns records, never rows."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from progressd.store.records import EventRecord, RunRecord, SampleRecord, SnapshotRecord

__all__ = ["EventRecord", "events", "get_run", "latest_snapshot", "list_runs", "samples"]

_RUN_FIELDS = "id, name, status, source_hash, created_at, started_at, finished_at, summary"


def list_runs(
    conn: sqlite3.Connection, *, state: str | None, since: float | None, limit: int
) -> list[RunRecord]:
    """Runs newest first, filtered by status and by "not finished before ``since``"."""
    where: list[str] = []
    args: list[Any] = []
    if state is not None:
        where.append("status = ?")
        args.append(state)
    if since is not None:
        where.append("(finished_at IS NULL OR finished_at >= ?)")
        args.append(since)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {_RUN_FIELDS} FROM runs {clause} ORDER BY created_at DESC, id LIMIT ?"
    return [_run(row) for row in conn.execute(sql, [*args, limit])]


def get_run(conn: sqlite3.Connection, run: str) -> RunRecord | None:
    row = conn.execute(f"SELECT {_RUN_FIELDS}, source FROM runs WHERE id = ?", (run,)).fetchone()
    return None if row is None else _run(row[:-1], source=row[-1])


def latest_snapshot(conn: sqlite3.Connection, run: str) -> SnapshotRecord | None:
    row = conn.execute(
        "SELECT at, version, data FROM snapshots WHERE run = ? ORDER BY id DESC LIMIT 1", (run,)
    ).fetchone()
    if row is None:
        return None
    return SnapshotRecord(run=run, at=row[0], version=row[1], data=bytes(row[2]))


def events(conn: sqlite3.Connection, run: str, *, kind: str | None) -> list[EventRecord]:
    sql = (
        "SELECT id, kind, scenario, milestone, reason, count, first_at, at, detail "
        "FROM events WHERE run = ?"
    )
    args: list[Any] = [run]
    if kind is not None:
        sql += " AND kind = ?"
        args.append(kind)
    return [
        EventRecord(
            id=r[0],
            run=run,
            kind=r[1],
            scenario=r[2],
            milestone=r[3],
            reason=r[4],
            count=r[5],
            first_at=r[6],
            at=r[7],
            detail=None if r[8] is None else msgspec.json.decode(r[8]),
        )
        for r in conn.execute(sql + " ORDER BY id", args)
    ]


def samples(
    conn: sqlite3.Connection, run: str, *, scenario: str | None, since: float | None, limit: int
) -> list[SampleRecord]:
    sql = (
        "SELECT scenario, at, done, total, rate, users_active, users_done "
        "FROM samples WHERE run = ?"
    )
    args: list[Any] = [run]
    if scenario is not None:
        sql += " AND scenario = ?"
        args.append(scenario)
    if since is not None:
        sql += " AND at >= ?"
        args.append(since)
    return [
        SampleRecord(
            run=run,
            scenario=r[0],
            at=r[1],
            done=r[2],
            total=r[3],
            rate=r[4],
            users_active=r[5],
            users_done=r[6],
        )
        for r in conn.execute(sql + " ORDER BY at, id LIMIT ?", [*args, limit])
    ]


def _run(row: tuple[Any, ...], *, source: str | None = None) -> RunRecord:
    summary = None if row[7] is None else msgspec.json.decode(row[7])
    return RunRecord(
        id=row[0],
        name=row[1],
        status=row[2],
        source_hash=row[3],
        created_at=row[4],
        started_at=row[5],
        finished_at=row[6],
        summary=summary,
        source=source,
    )
