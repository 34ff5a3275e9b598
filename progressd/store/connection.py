"""Opening the store's SQLite connection: pragmas, a quick integrity check, migrations.

Every way a file can be unusable becomes one ``StoreError`` naming the path and what to do;
nothing here ever deletes, truncates or replaces an existing file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from progressd.errors import StoreError
from progressd.store.schema import Migration, migrate

__all__ = ["WAL_KEEP_BYTES", "connect"]

WAL_KEEP_BYTES = 8 << 20  # a checkpointed WAL is truncated back to this size
_WHAT_TO_DO = (
    "progressd will not replace it: stop the daemon, move the file (and its -wal/-shm files) "
    "aside, then restore a backup or start with an empty state directory (docs/operations.md)"
)


def connect(path: str, migrations: Sequence[Migration]) -> tuple[sqlite3.Connection, int]:
    """An autocommit connection to the migrated store at ``path`` and its schema version.

    Raises:
        StoreError: the file cannot be opened, is not a readable SQLite database, fails its
            quick check, cannot use WAL, belongs to another application or is too new.
    """
    conn = _connect(path)
    try:
        version = _prepare(conn, path, migrations)
    except BaseException:
        conn.close()
        raise
    return conn, version


def _connect(path: str) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, cached_statements=64)
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot open the store: {exc}; check that the daemon's user may read and write "
            "the file and its directory",
            path=path,
        ) from None
    return conn


def _prepare(conn: sqlite3.Connection, path: str, migrations: Sequence[Migration]) -> int:
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 100")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # see checkpoint.py
        conn.execute(f"PRAGMA journal_size_limit = {WAL_KEEP_BYTES}")
        problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.Error as exc:
        if "unable to open" in str(exc) or "readonly" in str(exc):
            message = f"cannot open the store: {exc}; check the file's owner and permissions"
            raise StoreError(message, path=path) from None
        raise StoreError(f"the store is unreadable ({exc}); {_WHAT_TO_DO}", path=path) from None
    if problem != "ok":
        raise StoreError(
            f"the store failed its integrity check ({problem}); {_WHAT_TO_DO}", path=path
        )
    if str(mode).lower() != "wal":
        raise StoreError(f"the store cannot use WAL mode here (got {mode!r})", path=path)
    try:
        return migrate(conn, path, migrations)
    except sqlite3.Error as exc:
        raise StoreError(f"migrating the store failed: {exc}", path=path) from None
