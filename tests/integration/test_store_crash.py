"""kill -9 of a process writing to the store, at several points: the file stays consistent and
every batch whose commit the writer reported is there, all or nothing."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from progressd.store import Store

pytestmark = pytest.mark.integration

WRITER = r"""
import os, sys, time
from progressd.store import Store

store = Store.open(sys.argv[1])
hold = int(sys.argv[2])


def trace(sql):  # park inside batch `hold`'s transaction, after its other inserts ran
    if batch == hold and sql.startswith("INSERT INTO snapshots"):
        print("inside", batch, flush=True)
        time.sleep(60)


store.add_run("r1", name="crash", source="name: crash\n", status="running")
store.flush()
blob = os.urandom(256 * 1024)
batch = 0
store.connection.set_trace_callback(trace)
while True:
    store.record_event("r1", "milestone", scenario="s", milestone=f"m{batch}", count=batch + 1)
    store.record_event("r1", "rollback", scenario="s", reason="health-check")
    store.record_sample("r1", "s", done=batch, total=10**6, rate=1.0, users_active=9,
                        users_done=0)
    store.record_snapshot("r1", blob + batch.to_bytes(4, "big"), version=batch)
    print("flushing", batch, flush=True)
    store.flush()
    print("committed", batch, flush=True)
    batch += 1
"""


async def run_writer_until(path: Path, line: str) -> int:
    """Start the writer, SIGKILL it as soon as it prints ``line``; return the last batch it
    reported committed (-1 if none)."""
    word, number = line.split()
    hold = number if word == "inside" else "-1"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(path), hold, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    committed = -1
    try:
        async with asyncio.timeout(30):
            while True:
                text = (await child.stdout.readline()).decode().strip()
                assert text, "the writer exited before the kill point"
                word, number = text.split()
                if word == "committed":
                    committed = int(number)
                if text == line:
                    break
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    return committed


@pytest.mark.parametrize(
    "kill_at",
    ["committed 0", "committed 6", "flushing 3", "inside 9"],
    ids=["after-first-batch", "between-batches", "as-a-flush-starts", "inside-a-transaction"],
)
async def test_store_survives_kill_9_with_every_committed_batch(
    tmp_path: Path, kill_at: str
) -> None:
    path = tmp_path / "progressd.db"
    committed = await run_writer_until(path, kill_at)

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    store = Store.open(path)
    batches = [s.done for s in store.samples("r1")]
    assert batches == list(range(len(batches)))  # no hole: batches commit in order
    assert len(batches) - 1 >= committed  # nothing reported committed is missing
    if kill_at.startswith("inside"):
        assert batches == list(range(9))  # the interrupted transaction left no trace
    milestones = {e.milestone: e.count for e in store.events("r1", kind="milestone")}
    assert milestones == {f"m{b}": b + 1 for b in batches}  # each batch all or nothing
    rollbacks = store.events("r1", kind="rollback")
    assert len(rollbacks) == len(batches)
    snapshot = store.latest_snapshot("r1")
    assert snapshot is not None
    assert snapshot.version == batches[-1]
    assert int.from_bytes(snapshot.data[-4:], "big") == batches[-1]
    assert [r.id for r in store.running_runs()] == ["r1"]
    store.close()
