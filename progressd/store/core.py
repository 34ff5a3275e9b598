"""``Store``: progressd's embedded SQLite history (runs, events, samples, stable snapshots).

Design note. The store is called on the event loop and SQLite blocks, so every write path is
built to keep the stall short and measured. ``record_*`` calls only touch the in-memory
``WriteBuffer``; ``flush()`` writes all of it in ONE transaction (``executemany`` per table)
and records how long the loop was held in a histogram. The connection runs in WAL mode with
``synchronous=NORMAL``: a commit appends to the WAL without fsync, readers (a backup, the
``sqlite3`` shell) never block the writer, and a process killed at any instant leaves the
file consistent at its last commit. SQLite's automatic checkpoint is off: its fsyncs would be
the worst stall, so the daemon checkpoints from a child process (``checkpoint.py``), and
``flush()`` checkpoints in-process only if the WAL outgrows 64 MiB. Power loss may lose the
commits since the last checkpoint, never the file.

Failure is loud, never silent: a file that is not a readable SQLite database, fails its quick
check, belongs to another application or comes from a newer schema raises ``StoreError`` naming
the path and what to do; the store never deletes or replaces such a file. A flush that fails
rolls back and keeps its rows buffered for the next try.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from progressd.errors import StoreError
from progressd.histogram import LatencyHistogram
from progressd.store import queries
from progressd.store.buffer import Pending, WriteBuffer
from progressd.store.checkpoint import CheckpointResult, result_from_row
from progressd.store.connection import connect
from progressd.store.records import (
    COMMIT_BUCKETS,
    EVENT_KINDS,
    EventRecord,
    RunRecord,
    SampleRecord,
    SnapshotRecord,
    StoreStatistics,
)
from progressd.store.schema import MIGRATIONS, Migration
from progressd.store.writer import transaction, write_pending

__all__ = ["DB_NAME", "Store"]

DB_NAME = "progressd.db"
PRUNE_CHUNK = 256  # samples deleted per transaction (about 0.5 ms)
WAL_INLINE_CHECKPOINT_BYTES = 64 << 20  # past this, flush() checkpoints in-process
EventTuple = tuple[str, str, str, str]  # kind, scenario, milestone, reason
_RUN_COLUMNS = frozenset({"status", "started_at", "finished_at", "summary"})
_json = msgspec.json.Encoder()


class Store:
    """The history of runs, in one SQLite file. Use ``Store.open(path)``; not thread-safe
    (one loop, one thread). Reads see only flushed rows: flush first when that matters.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        *,
        version: int,
        snapshots_kept: int = 3,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.schema_version = version
        self.snapshots_kept = snapshots_kept
        self._conn = conn
        self._wall = wall
        self._buffer = WriteBuffer()
        self._runs: set[str] = {row[0] for row in conn.execute("SELECT id FROM runs")}
        self._commit_hist = LatencyHistogram(lowest=1e-6, highest=60.0)
        self._checkpoint_hist = LatencyHistogram(lowest=1e-6, highest=60.0)
        self._commits = self._failed = self._rows = self._blob_bytes = 0
        self._max_buffered = self._appends = self._pruned = 0

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        snapshots_kept: int = 3,
        migrations: Sequence[Migration] = MIGRATIONS,
        wall: Callable[[], float] = time.time,
    ) -> Store:
        """Open (creating or migrating) the store at ``path``.

        Raises:
            StoreError: the directory or file cannot be opened, the file is not a readable
                progressd store, fails its quick check, or has a newer schema.
        """
        where = os.fspath(path)
        if not Path(where).parent.is_dir():
            raise StoreError("the state directory does not exist; create it first", path=where)
        conn, version = connect(where, migrations)
        return cls(conn, where, version=version, snapshots_kept=snapshots_kept, wall=wall)

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection, for backups (``connection.backup``) and diagnostics."""
        return self._conn

    @property
    def buffered_rows(self) -> int:
        return self._buffer.rows

    # -- appends: no SQL ---------------------------------------------------------------------

    def add_run(
        self, run: str, *, name: str, source: str, status: str, created_at: float | None = None
    ) -> None:
        """Buffer a new run. Flush before answering a caller that must know it is durable.

        Raises:
            StoreError: a run with this id already exists.
        """
        if run in self._runs:
            raise StoreError(f"run {run!r} is already in the store; run ids are unique")
        digest = hashlib.sha256(source.encode()).hexdigest()
        at = self._wall() if created_at is None else created_at
        self._runs.add(run)
        self._buffer.add_run((run, name, source, digest, status, at))
        self._appends += 1

    def update_run(self, run: str, **columns: Any) -> None:
        """Buffer new values for ``status``, ``started_at``, ``finished_at`` or ``summary``
        (any msgspec-encodable value, stored as JSON).

        Raises:
            StoreError: an unknown run or column.
        """
        self._require_run(run)
        unknown = set(columns) - _RUN_COLUMNS
        if unknown:
            raise StoreError(f"cannot update {sorted(unknown)}: use {sorted(_RUN_COLUMNS)}")
        if "summary" in columns and columns["summary"] is not None:
            columns["summary"] = _json.encode(columns["summary"]).decode()
        self._buffer.update_run(run, columns)
        self._appends += 1

    def record_event(
        self,
        run: str,
        kind: str,
        *,
        scenario: str = "",
        milestone: str = "",
        reason: str = "",
        count: int = 1,
        at: float | None = None,
        detail: Any = None,
    ) -> None:
        """Buffer ``count`` events; detail-less ones aggregate into one row per flush.

        Raises:
            StoreError: an unknown run or kind, or a count below 1.
        """
        if run not in self._runs:
            self._require_run(run)
        if kind not in EVENT_KINDS or count < 1:
            raise StoreError(f"bad event: kind {kind!r} (use {sorted(EVENT_KINDS)}), {count=}")
        key = (run, kind, scenario, milestone, reason)
        when = self._wall() if at is None else at
        if detail is None:
            self._buffer.add_event(key, count, when)
        else:
            self._buffer.add_detailed_event(key, when, _json.encode(detail).decode())
        self._appends += 1

    def record_event_counts(
        self, run: str, counts: Mapping[EventTuple, int], *, at: float | None = None
    ) -> None:
        """Buffer pre-counted events, keyed ``(kind, scenario, milestone, reason)``: what an
        event-bus subscriber gets from ``collections.Counter`` over one batch. The cheap path.

        Raises:
            StoreError: an unknown run or kind, or a count below 1 (nothing is buffered).
        """
        self._require_run(run)
        for (kind, *_), count in counts.items():
            if kind not in EVENT_KINDS or count < 1:
                raise StoreError(f"bad event: kind {kind!r} (use {sorted(EVENT_KINDS)}), {count=}")
        when = self._wall() if at is None else at
        add = self._buffer.add_event
        for (kind, scenario, milestone, reason), count in counts.items():
            add((run, kind, scenario, milestone, reason), count, when)
        self._appends += 1

    def record_sample(
        self,
        run: str,
        scenario: str,
        *,
        done: int,
        total: int,
        rate: float,
        users_active: int,
        users_done: int,
        at: float | None = None,
    ) -> None:
        """Buffer one progress sample.

        Raises:
            StoreError: an unknown run.
        """
        self._require_run(run)
        when = self._wall() if at is None else at
        row = (run, scenario, when, done, total, rate, users_active, users_done)
        self._buffer.add_sample(row)
        self._appends += 1

    def record_snapshot(
        self, run: str, data: bytes, *, version: int, at: float | None = None
    ) -> None:
        """Buffer a stable snapshot; it supersedes an unflushed older one of the same run.

        Raises:
            StoreError: an unknown run.
        """
        self._require_run(run)
        when = self._wall() if at is None else at
        self._buffer.add_snapshot((run, when, version, bytes(data)))
        self._appends += 1

    # -- writes: one transaction each --------------------------------------------------------

    def flush(self) -> int:
        """Write everything buffered in one transaction; return the rows written (0: no-op).

        Raises:
            StoreError: the transaction failed (disk full, I/O error, locked); it was rolled
                back and the rows stay buffered for the next flush.
        """
        rows = self._buffer.rows
        if not rows:
            return 0
        self._max_buffered = max(self._max_buffered, rows)
        pending = self._buffer.take()
        began = time.perf_counter()
        try:
            written = self._write(pending)
        except sqlite3.Error as exc:
            self._buffer.give_back(pending)
            self._failed += 1
            raise StoreError(f"flush failed and was rolled back: {exc}", path=self.path) from exc
        self._commit_hist.record(time.perf_counter() - began)
        self._commits += 1
        self._rows += written
        if self.wal_bytes > WAL_INLINE_CHECKPOINT_BYTES:
            self.checkpoint()
        return written

    @property
    def wal_bytes(self) -> int:
        """Size of the ``-wal`` file (0 when there is none)."""
        try:
            return os.stat(self.path + "-wal").st_size
        except OSError:
            return 0

    def checkpoint(self) -> CheckpointResult:
        """Copy the WAL into the database in this process (fsyncs: a measured loop stall).
        The daemon prefers ``checkpoint_in_subprocess``; this is the fallback.

        Raises:
            StoreError: the checkpoint failed.
        """
        began = time.perf_counter()
        try:
            row = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"checkpoint failed: {exc}", path=self.path) from exc
        seconds = time.perf_counter() - began
        self._checkpoint_hist.record(seconds)
        return result_from_row(row, seconds)

    def prune(self, older_than: float, *, limit: int = PRUNE_CHUNK) -> int:
        """Delete at most ``limit`` samples taken before ``older_than`` (epoch seconds), in one
        transaction; return how many. Call again (on a later loop turn) while it returns
        ``limit``: deleting touches three indexes, so a small chunk keeps the stall short.

        Raises:
            StoreError: the delete failed.
        """
        sql = (
            "DELETE FROM samples WHERE id IN "
            "(SELECT id FROM samples WHERE at < ? ORDER BY at LIMIT ?)"
        )
        began = time.perf_counter()
        try:
            deleted = self._transaction(lambda c: c.execute(sql, (older_than, limit)).rowcount)
        except sqlite3.Error as exc:
            raise StoreError(f"pruning samples failed: {exc}", path=self.path) from exc
        self._commit_hist.record(time.perf_counter() - began)
        self._pruned += deleted
        return deleted

    def close(self) -> None:
        """Flush, let SQLite optimize its statistics, and close. Idempotent.

        Raises:
            StoreError: the final flush failed (the connection is closed anyway).
        """
        try:
            self.flush()
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA optimize")
            self._conn.close()

    # -- reads -------------------------------------------------------------------------------

    def list_runs(
        self, *, state: str | None = None, since: float | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Runs, newest first; ``state`` filters by status, ``since`` keeps runs not finished
        before that time (epoch seconds). Scenario sources are left out."""
        return queries.list_runs(self._conn, state=state, since=since, limit=limit)

    def get_run(self, run: str) -> RunRecord | None:
        """One run with its scenario source, or ``None``."""
        return queries.get_run(self._conn, run)

    def running_runs(self) -> list[RunRecord]:
        """Runs whose stored status is ``running`` (at startup: the ones a crash interrupted)."""
        return queries.list_runs(self._conn, state="running", since=None, limit=-1)

    def latest_snapshot(self, run: str) -> SnapshotRecord | None:
        return queries.latest_snapshot(self._conn, run)

    def events(self, run: str, *, kind: str | None = None) -> list[EventRecord]:
        return queries.events(self._conn, run, kind=kind)

    def samples(
        self,
        run: str,
        *,
        scenario: str | None = None,
        since: float | None = None,
        limit: int = -1,
    ) -> list[SampleRecord]:
        """Samples oldest first. Reads block the loop too: bound them with ``since``/``limit``
        (about 7 µs per row; 7 days of one scenario at 5 s is 121,000 rows)."""
        return queries.samples(self._conn, run, scenario=scenario, since=since, limit=limit)

    def statistics(self) -> StoreStatistics:
        hist = self._commit_hist
        return StoreStatistics(
            path=self.path,
            schema_version=self.schema_version,
            commits=self._commits,
            failed_commits=self._failed,
            rows_written=self._rows,
            snapshot_bytes_written=self._blob_bytes,
            buffered_rows=self._buffer.rows,
            max_buffered_rows=self._max_buffered,
            appends=self._appends,
            pruned_rows=self._pruned,
            commit_seconds=hist.summary(),
            commit_buckets=tuple(hist.count_le(bound) for bound in COMMIT_BUCKETS),
            inline_checkpoint_seconds=self._checkpoint_hist.summary(),
        )

    # -- internals ---------------------------------------------------------------------------

    def _require_run(self, run: str) -> None:
        if run not in self._runs:
            raise StoreError(f"unknown run {run!r}: add_run() it before recording its history")

    def _write(self, pending: Pending) -> int:
        written = transaction(self._conn, lambda c: write_pending(c, pending, self.snapshots_kept))
        self._blob_bytes += sum(len(row[3]) for row in pending.snapshots.values())
        return written

    def _transaction(self, body: Callable[[sqlite3.Connection], int]) -> int:
        return transaction(self._conn, body)
