"""The SQLite store: schema and migrations, buffered writes, one transaction per flush, reads,
retention, and the refusals that protect a file it cannot trust."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from progressd.errors import StoreError
from progressd.store import MIGRATIONS, SCHEMA_VERSION, Migration, Store
from progressd.store.schema import APPLICATION_ID


class Wall:
    """An injected wall clock: history timestamps without sleeping."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def open_store(tmp_path: Path, **options: object) -> Store:
    return Store.open(tmp_path / "progressd.db", **options)  # type: ignore[arg-type]


def with_run(store: Store, run: str = "r1", *, status: str = "running", at: float = 100.0) -> None:
    store.add_run(run, name="checkout", source="name: checkout\n", status=status, created_at=at)


def test_store_open_migrates_an_empty_file_to_the_latest_schema(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    conn = store.connection
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"runs", "events", "samples", "snapshots"}
    store.close()


def test_store_round_trips_runs_events_samples_and_snapshots(tmp_path: Path) -> None:
    store = open_store(tmp_path, wall=Wall())
    with_run(store)
    store.update_run("r1", started_at=101.0)
    store.record_event("r1", "milestone", scenario="buy", milestone="paid", at=102.0)
    store.record_event("r1", "state", at=103.0, detail={"from": "pending", "to": "running"})
    store.record_sample(
        "r1", "buy", done=5, total=10, rate=2.5, users_active=3, users_done=1, at=104.0
    )
    store.record_snapshot("r1", b"PDST-bytes", version=7, at=105.0)
    store.flush()
    store.update_run("r1", status="succeeded", finished_at=110.0, summary={"passed": True})
    store.close()

    again = open_store(tmp_path)
    run = again.get_run("r1")
    assert run is not None
    assert (run.name, run.status, run.source) == ("checkout", "succeeded", "name: checkout\n")
    assert (run.created_at, run.started_at, run.finished_at) == (100.0, 101.0, 110.0)
    assert run.summary == {"passed": True}
    assert len(run.source_hash) == 64
    kinds = [(e.kind, e.milestone, e.count, e.at, e.detail) for e in again.events("r1")]
    assert kinds == [
        ("milestone", "paid", 1, 102.0, None),
        ("state", "", 1, 103.0, {"from": "pending", "to": "running"}),
    ]
    (sample,) = again.samples("r1")
    assert (sample.done, sample.total, sample.rate, sample.users_active) == (5, 10, 2.5, 3)
    snapshot = again.latest_snapshot("r1")
    assert snapshot is not None
    assert (snapshot.data, snapshot.version, snapshot.at) == (b"PDST-bytes", 7, 105.0)
    assert again.get_run("nope") is None
    assert again.latest_snapshot("nope") is None
    again.close()


def test_store_aggregates_detail_less_events_into_one_row_per_flush(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with_run(store)
    for i in range(1000):
        store.record_event("r1", "milestone", scenario="buy", milestone="paid", at=200.0 + i)
    store.record_event("r1", "rollback", scenario="buy", milestone="paid", reason="health-check")
    assert store.buffered_rows == 3  # the run, two event tallies
    store.flush()
    paid, rollback = store.events("r1")
    assert (paid.count, paid.first_at, paid.at) == (1000, 200.0, 1199.0)
    assert (rollback.kind, rollback.reason, rollback.count) == ("rollback", "health-check", 1)
    store.close()


def test_store_flush_commits_everything_in_one_transaction(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with_run(store)
    store.flush()
    statements: list[str] = []
    store.connection.set_trace_callback(statements.append)
    for i in range(500):
        store.record_event("r1", "error", scenario="buy", reason=f"class-{i % 7}")
        store.record_sample("r1", "buy", done=i, total=500, rate=1.0, users_active=1, users_done=0)
    store.record_snapshot("r1", b"x" * 10_000, version=1)
    written = store.flush()
    store.connection.set_trace_callback(None)
    words = [s.split()[0].upper() for s in statements]
    assert words.count("BEGIN") == 1
    assert words.count("COMMIT") == 1
    assert written == 7 + 500 + 1
    assert store.statistics().commits == 2
    assert store.flush() == 0  # nothing buffered: no transaction at all
    store.close()


def test_store_failed_flush_rolls_back_and_keeps_rows_for_the_next(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with_run(store)
    store.flush()
    store.record_event("r1", "milestone", milestone="paid", count=3, at=1.0)
    blocker = sqlite3.connect(tmp_path / "progressd.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock past busy_timeout
    with pytest.raises(StoreError, match=r"flush failed and was rolled back: database is locked"):
        store.flush()
    store.record_event("r1", "milestone", milestone="paid", count=2, at=2.0)
    blocker.execute("ROLLBACK")
    blocker.close()
    store.flush()
    (event,) = store.events("r1")
    assert (event.count, event.first_at, event.at) == (5, 1.0, 2.0)
    stats = store.statistics()
    assert (stats.failed_commits, stats.buffered_rows) == (1, 0)
    store.close()


def test_store_refuses_a_schema_from_a_newer_progressd(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "progressd.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(
        StoreError, match=r"newer progressd \(schema 99; this build knows up to 1\)"
    ):
        open_store(tmp_path)


def test_store_refuses_another_applications_sqlite_file(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "progressd.db")
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"not a progressd store .*progressd\.db\)$"):
        open_store(tmp_path)


def test_store_refuses_a_corrupt_file_and_leaves_it_untouched(tmp_path: Path) -> None:
    path = tmp_path / "progressd.db"
    garbage = b"definitely not SQLite " * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match=r"unreadable .*will not replace it.*restore a backup"):
        open_store(tmp_path)
    assert path.read_bytes() == garbage


def test_store_refuses_a_file_with_a_damaged_page(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for i in range(200):
        with_run(store, f"r{i}", at=float(i))
    store.close()
    path = tmp_path / "progressd.db"
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page : 4 * page] = b"\xff" * page  # a page in the middle of the runs table
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"(integrity check|unreadable)"):
        open_store(tmp_path)


def test_store_open_names_a_missing_state_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"state directory does not exist.*missing/progressd\.db"):
        Store.open(tmp_path / "missing" / "progressd.db")


def test_store_migrations_apply_in_order_and_stop_at_a_failure(tmp_path: Path) -> None:
    extra = Migration(2, "labels", ("CREATE TABLE labels (run TEXT, label TEXT)",))
    broken = Migration(3, "broken", ("CREATE TABLE oops (", "SELECT 1"))
    open_store(tmp_path, migrations=MIGRATIONS).close()
    store = open_store(tmp_path, migrations=(*MIGRATIONS, extra))
    assert store.schema_version == 2
    store.connection.execute("INSERT INTO labels VALUES ('r1', 'nightly')")
    store.close()
    with pytest.raises(StoreError, match=r"migrating the store failed"):
        open_store(tmp_path, migrations=(*MIGRATIONS, extra, broken))
    conn = sqlite3.connect(tmp_path / "progressd.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert conn.execute("SELECT label FROM labels").fetchall() == [("nightly",)]
    conn.close()


def test_store_prune_deletes_only_samples_older_than_the_window(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with_run(store)
    for at in range(100):
        store.record_sample(
            "r1", "buy", done=at, total=100, rate=1.0, users_active=1, users_done=0, at=at
        )
    store.flush()
    assert store.prune(60.0, limit=25) == 25
    assert store.prune(60.0, limit=25) == 25
    assert store.prune(60.0, limit=25) == 10
    assert store.prune(60.0) == 0
    assert [s.at for s in store.samples("r1")] == [float(at) for at in range(60, 100)]
    assert [s.at for s in store.samples("r1", since=95.0)] == [95.0, 96.0, 97.0, 98.0, 99.0]
    assert store.statistics().pruned_rows == 60
    store.close()


def test_store_keeps_only_the_newest_snapshots_of_each_run(tmp_path: Path) -> None:
    store = open_store(tmp_path, snapshots_kept=2)
    with_run(store, "a")
    with_run(store, "b")
    for version in range(5):
        store.record_snapshot("a", f"a{version}".encode(), version=version)
        store.record_snapshot("b", b"b", version=version)
        store.record_snapshot("b", b"b-newer", version=version)  # supersedes before the flush
        store.flush()
    rows = store.connection.execute("SELECT run, version, data FROM snapshots ORDER BY id")
    assert rows.fetchall() == [
        ("a", 3, b"a3"),
        ("b", 3, b"b-newer"),
        ("a", 4, b"a4"),
        ("b", 4, b"b-newer"),
    ]
    store.close()


def test_store_lists_runs_by_state_and_since(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with_run(store, "old", status="succeeded", at=10.0)
    with_run(store, "mid", status="failed", at=20.0)
    with_run(store, "new", status="running", at=30.0)
    store.update_run("old", finished_at=15.0)
    store.update_run("mid", finished_at=40.0)
    store.flush()
    assert [r.id for r in store.list_runs()] == ["new", "mid", "old"]
    assert [r.id for r in store.list_runs(state="failed")] == ["mid"]
    assert [r.id for r in store.list_runs(since=20.0)] == ["new", "mid"]
    assert [r.id for r in store.list_runs(limit=1)] == ["new"]
    assert all(r.source is None for r in store.list_runs())
    store.close()


def test_store_running_runs_are_the_ones_a_crash_interrupted(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with_run(store, "done", status="running")
    with_run(store, "live", status="running")
    store.flush()
    store.update_run("done", status="succeeded")
    store.flush()
    store.connection.close()  # no clean close: as if the process died here
    again = open_store(tmp_path)
    assert [r.id for r in again.running_runs()] == ["live"]
    again.close()


def test_store_rejects_history_for_unknown_runs_and_bad_values(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with_run(store)
    with pytest.raises(StoreError, match=r"unknown run 'ghost': add_run\(\) it"):
        store.record_event("ghost", "milestone")
    with pytest.raises(StoreError, match=r"already in the store"):
        with_run(store)
    with pytest.raises(StoreError, match=r"bad event: kind 'reached'"):
        store.record_event("r1", "reached")
    with pytest.raises(StoreError, match=r"count=0"):
        store.record_event("r1", "milestone", count=0)
    with pytest.raises(StoreError, match=r"cannot update \['name'\]"):
        store.update_run("r1", name="renamed")
    store.close()


def test_store_statistics_count_commits_rows_and_durations(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with_run(store)
    store.record_event("r1", "lease", reason="127.0.0.1:18081", count=4)
    store.flush()
    stats = store.statistics()
    assert (stats.commits, stats.rows_written, stats.appends, stats.max_buffered_rows) == (
        1,
        2,
        2,
        2,
    )
    assert stats.commit_seconds.count == 1
    assert stats.commit_seconds.sum > 0
    assert stats.commit_buckets[-1] == 1  # every commit took under a second
    assert list(stats.commit_buckets) == sorted(stats.commit_buckets)  # cumulative
    store.close()


def test_store_backup_by_vacuum_into_while_open_is_consistent(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with_run(store)
    for batch in range(20):
        store.record_sample(
            "r1", "buy", done=batch, total=20, rate=1.0, users_active=1, users_done=0
        )
        store.flush()
        if batch == 9:  # a second process's connection, as `sqlite3 ... "VACUUM INTO"` is
            reader = sqlite3.connect(tmp_path / "progressd.db")
            reader.execute("VACUUM INTO ?", (str(tmp_path / "backup.db"),))
            reader.close()
    store.close()
    backup = Store.open(tmp_path / "backup.db")
    assert [s.done for s in backup.samples("r1")] == list(range(10))
    assert backup.connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    backup.close()


def test_store_record_event_counts_merges_with_single_events(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with_run(store)
    batch = [("milestone", "buy", "paid", "")] * 40 + [("error", "buy", "", "timeout")] * 2
    store.record_event_counts("r1", Counter(batch), at=5.0)
    store.record_event("r1", "milestone", scenario="buy", milestone="paid", count=2, at=6.0)
    with pytest.raises(StoreError, match=r"bad event: kind 'oops'"):
        store.record_event_counts("r1", {("oops", "buy", "", ""): 1, ("error", "", "", ""): 1})
    store.flush()
    got = [(e.kind, e.reason, e.count, e.first_at, e.at) for e in store.events("r1")]
    assert got == [("milestone", "", 42, 5.0, 6.0), ("error", "timeout", 2, 5.0, 5.0)]
    store.close()
