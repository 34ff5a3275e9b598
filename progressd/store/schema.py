"""The store's schema and its ordered migrations.

Design note. The schema version lives in SQLite's ``user_version`` header field and the file
is marked as progressd's with ``application_id``. ``migrate()`` applies, in order, every
migration newer than the file, each in its own transaction that also bumps ``user_version``,
so a crash mid-migration leaves the file at the last complete version. A file whose version is
newer than this build knows is refused (an older progressd must not write a newer layout), and
a SQLite file that belongs to something else is refused rather than adopted.

To change the schema, append a ``Migration`` with the next version; never edit a released one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from progressd.errors import StoreError

APPLICATION_ID = int.from_bytes(b"prgd", "big")


@dataclass(frozen=True, slots=True)
class Migration:
    """Statements that move the schema from ``version - 1`` to ``version``."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, aggregated events, progress samples, stable snapshots",
        (
            """CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                source TEXT NOT NULL,
                source_hash TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at REAL NOT NULL,
                started_at REAL,
                finished_at REAL,
                summary TEXT
            )""",
            "CREATE INDEX runs_status ON runs (status, created_at)",
            """CREATE TABLE events (
                id INTEGER PRIMARY KEY,
                run TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                kind TEXT NOT NULL
                    CHECK (kind IN ('milestone', 'rollback', 'error', 'lease', 'state')),
                scenario TEXT NOT NULL DEFAULT '',
                milestone TEXT NOT NULL DEFAULT '',
                reason TEXT NOT NULL DEFAULT '',
                count INTEGER NOT NULL CHECK (count > 0),
                first_at REAL NOT NULL,
                at REAL NOT NULL,
                detail TEXT
            )""",
            "CREATE INDEX events_run ON events (run, id)",
            """CREATE TABLE samples (
                id INTEGER PRIMARY KEY,
                run TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                scenario TEXT NOT NULL,
                at REAL NOT NULL,
                done INTEGER NOT NULL,
                total INTEGER NOT NULL,
                rate REAL NOT NULL,
                users_active INTEGER NOT NULL,
                users_done INTEGER NOT NULL
            )""",
            "CREATE INDEX samples_run ON samples (run, scenario, at)",
            "CREATE INDEX samples_at ON samples (at)",
            """CREATE TABLE snapshots (
                id INTEGER PRIMARY KEY,
                run TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                at REAL NOT NULL,
                version INTEGER NOT NULL,
                data BLOB NOT NULL
            )""",
            "CREATE INDEX snapshots_run ON snapshots (run, id)",
            f"PRAGMA application_id = {APPLICATION_ID}",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


def migrate(
    conn: sqlite3.Connection, path: str, migrations: Sequence[Migration] = MIGRATIONS
) -> int:
    """Bring the file at ``path`` up to the last of ``migrations``; return its version.

    ``conn`` must be in autocommit mode (``isolation_level=None``).

    Raises:
        StoreError: the file belongs to another application, or was written by a newer schema.
    """
    _check_versions(migrations)
    current = _check_owner(conn, path, latest=migrations[-1].version)
    for migration in migrations:
        if migration.version > current:
            _apply(conn, migration)
            current = migration.version
    return current


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _check_owner(conn: sqlite3.Connection, path: str, *, latest: int) -> int:
    version = schema_version(conn)
    app = int(conn.execute("PRAGMA application_id").fetchone()[0])
    has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    if app not in (0, APPLICATION_ID) or (app == 0 and has_tables):
        raise StoreError(
            "this SQLite file is not a progressd store (it already holds another application's "
            "tables); point [state] directory elsewhere or move the file aside",
            path=path,
        )
    if version > latest:
        raise StoreError(
            f"the store was written by a newer progressd (schema {version}; this build knows up "
            f"to {latest}); upgrade progressd, or restore a backup made by this version",
            path=path,
        )
    return version


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {int(migration.version)}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _check_versions(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    # Invariants: migrations are numbered 1, 2, 3... with no gap, in order.
    assert versions == list(range(1, len(versions) + 1)), versions
