"""The store as a daemon extension: opened at startup, flushed by a timer task, checkpointed by
a child process, closed at shutdown, and scraped as ``progressd_store_*`` metrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from progressd.config import Config, parse_config
from progressd.daemon import build_daemon
from progressd.errors import StateError, StoreError
from progressd.store import DB_NAME, Store, install, store_of
from progressd.store.checkpoint import checkpoint_in_subprocess


def make_config(sock_dir: Path, tmp_path: Path, state: str = "") -> Config:
    return parse_config(
        f'[control]\nsocket = "{sock_dir}/d.sock"\n[metrics]\nlisten = "off"\n'
        f'[state]\ndirectory = "{tmp_path}/state"\n{state}'
    )


async def test_store_service_opens_at_startup_and_flushes_at_shutdown(
    sock_dir: Path, tmp_path: Path
) -> None:
    daemon = build_daemon(make_config(sock_dir, tmp_path), extensions=[install])
    with pytest.raises(StateError, match="the store is not open"):
        store_of(daemon)
    await daemon.startup()
    store = store_of(daemon)
    store.add_run("r1", name="checkout", source="name: checkout\n", status="running")
    store.record_event("r1", "milestone", milestone="paid", count=3)
    await daemon.shutdown(5.0)
    with pytest.raises(StateError):
        store_of(daemon)

    reopened = Store.open(tmp_path / "state" / DB_NAME)
    assert [(e.milestone, e.count) for e in reopened.events("r1")] == [("paid", 3)]
    reopened.close()


async def test_store_service_flushes_on_its_interval_without_a_thread(
    sock_dir: Path, tmp_path: Path
) -> None:
    config = make_config(sock_dir, tmp_path, 'flush-interval = "20ms"\n')
    daemon = build_daemon(config, extensions=[install])
    await daemon.startup()
    try:
        store = store_of(daemon)
        store.add_run("r1", name="n", source="s", status="running")
        async with asyncio.timeout(5):
            # the flush task runs on a real 20 ms timer; poll what it does
            while store.statistics().commits == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert store.buffered_rows == 0
        assert "store-flush" in {t.get_name() for t in asyncio.all_tasks()}
    finally:
        await daemon.shutdown(5.0)


async def test_store_service_exposes_commit_duration_histogram(
    sock_dir: Path, tmp_path: Path
) -> None:
    daemon = build_daemon(make_config(sock_dir, tmp_path), extensions=[install])
    await daemon.startup()
    try:
        store = store_of(daemon)
        store.add_run("r1", name="n", source="s", status="running")
        store.flush()
        text = daemon.telemetry.render().decode()
    finally:
        await daemon.shutdown(5.0)
    assert "# TYPE progressd_store_commit_duration_seconds histogram" in text
    assert 'progressd_store_commit_duration_seconds_bucket{le="+Inf"} 1.0' in text
    assert "progressd_store_commit_duration_seconds_count 1.0" in text
    assert "progressd_store_commits_total 1.0" in text
    assert "progressd_store_rows_written_total 1.0" in text
    assert "progressd_store_buffered_rows 0.0" in text


async def test_store_service_refuses_to_start_on_a_corrupt_store(
    sock_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / DB_NAME).write_bytes(b"garbage" * 1000)
    daemon = build_daemon(make_config(sock_dir, tmp_path), extensions=[install])
    with pytest.raises(StoreError, match=r"unreadable .*progressd\.db\)$"):
        await daemon.startup()
    await daemon.shutdown(5.0)


async def test_checkpoint_in_subprocess_copies_the_wal_into_the_database(tmp_path: Path) -> None:
    store = Store.open(tmp_path / DB_NAME)
    store.add_run("r1", name="n", source="s" * 100_000, status="running")
    store.flush()
    assert store.wal_bytes > 100_000
    result = await checkpoint_in_subprocess(store.path)
    assert not result.busy
    assert result.wal_frames > 0
    assert result.checkpointed == result.wal_frames
    run = store.get_run("r1")  # the writer carries on after a checkpoint by another process
    assert run is not None
    store.close()


async def test_checkpoint_in_subprocess_explains_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"the checkpoint failed: .*unable to open"):
        await checkpoint_in_subprocess(str(tmp_path / "nowhere" / DB_NAME))


async def test_store_service_prunes_a_backlog_in_small_chunks(
    sock_dir: Path, tmp_path: Path
) -> None:
    config = make_config(sock_dir, tmp_path, 'flush-interval = "10ms"\nretention = "1d"\n')
    daemon = build_daemon(config, extensions=[install])
    await daemon.startup()
    try:
        store = store_of(daemon)
        store.add_run("r1", name="n", source="s", status="running")
        now = time.time()
        for i in range(600):  # 600 samples from last month, 5 from now
            at = now - 30 * 86400 + i
            store.record_sample(
                "r1", "buy", done=i, total=1, rate=1.0, users_active=1, users_done=0, at=at
            )
        for i in range(5):
            store.record_sample(
                "r1", "buy", done=i, total=1, rate=1.0, users_active=1, users_done=0, at=now
            )
        store.flush()
        async with asyncio.timeout(10):
            while store.statistics().pruned_rows < 600:  # noqa: ASYNC110 - timer-driven
                await asyncio.sleep(0.01)
        assert store.statistics().pruned_rows == 600
        assert len(store.samples("r1")) == 5
        assert store.statistics().commit_seconds.count >= 1 + 3  # the flush, 3 prune chunks
    finally:
        await daemon.shutdown(5.0)
