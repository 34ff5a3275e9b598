"""kill -9 of a real daemon in the middle of a run, then a restart on the same state directory:
the run completes, no milestone committed before the kill is missing afterwards, users do not
redo work that lies before their stable point, and the store passes its integrity check."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import msgspec
import pytest
from harness import run_ctl, running_daemon

from progressd.client import ControlClient
from progressd.errors import ControlError
from progressd.launcher import DaemonProcess
from progressd.runs.backends import Backend, running_backends
from progressd.runs.history import RunHistory
from progressd.runs.messages import SubmitReply, SubmitRequest
from progressd.summary import RunSummary

pytestmark = pytest.mark.integration

USERS = 8
SCENARIO = """\
version: 2
name: crashy
load:
  scenarios:
    - name: shop
      users: {users}
      ramp: 400ms
      iterations: 1
      steps:
        - {{name: home, http: {{method: GET, url: "http://{address}/"}}, expect: {{status: 200}}}}
        - milestone: browsed
        - think: 1500ms
        - {{name: health, http: {{method: GET, url: "http://{address}/health"}}}}
        - milestone: checked
        - think: 200ms
        - milestone: done
"""
STATE = 'flush-interval = "{flush}"\nsample-interval = "200ms"\nsnapshot-interval = "1s"\n'


def committed_milestones(workdir: Path, run: str) -> dict[str, int]:
    conn = sqlite3.connect(workdir / "state" / "progressd.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute(
            "SELECT milestone, SUM(count) FROM events WHERE run = ? AND kind = 'milestone' "
            "GROUP BY milestone",
            (run,),
        ).fetchall()
    finally:
        conn.close()
    return {name: int(n) for name, n in rows}


async def summary_of(daemon: DaemonProcess, run: str) -> RunSummary:
    async with ControlClient(daemon.socket_path, timeout=5.0) as client:
        return await client.get(f"/v1/runs/{run}", RunSummary)


async def wait_committed(workdir: Path, run: str, milestone: str, n: int) -> None:
    async with asyncio.timeout(10):
        while True:  # another process's commits: nothing to await but the file
            if committed_milestones(workdir, run).get(milestone, 0) >= n:
                return
            await asyncio.sleep(0.02)


async def wait_ended(daemon: DaemonProcess, run: str) -> RunSummary:
    """Follow the run's event stream to its ``end`` line; the final summary."""
    async with asyncio.timeout(15), ControlClient(daemon.socket_path, timeout=15.0) as client:
        async for _ in client.stream_lines("GET", f"/v1/runs/{run}/events?interval=1"):
            pass
    return await summary_of(daemon, run)


async def kill_and_resume(tmp_path: Path, backend: Backend, point: str) -> None:
    flush = "10ms" if point == "during-flush" else "50ms"
    state = STATE.format(flush=flush)
    text = SCENARIO.format(users=USERS, address=backend.address)
    async with running_daemon(tmp_path, state_extra=state) as daemon:
        async with ControlClient(daemon.socket_path, timeout=5.0) as client:
            reply = await client.request(
                "POST", "/v1/runs", reply=SubmitReply, body=SubmitRequest(text=text)
            )
        run = reply.run
        if point == "between-milestones":
            await wait_committed(tmp_path, run, "browsed", USERS)
        elif point == "sigterm":
            await wait_committed(tmp_path, run, "browsed", 1)
            assert await daemon.stop(signal.SIGTERM) == 0
        elif point == "during-flush":
            await wait_committed(tmp_path, run, "browsed", 1)
            await asyncio.sleep(0.013)  # flushes commit every 10 ms: land amid them
        if point != "sigterm":
            await daemon.stop(signal.SIGKILL)
    before = committed_milestones(tmp_path, run)
    homes_before = backend.counts["/"]
    async with running_daemon(tmp_path, state_extra=state) as daemon:
        resumed = await summary_of(daemon, run)
        for milestone, n in before.items():
            assert resumed.milestones[milestone] >= n, (point, before, resumed.milestones)
        final = await wait_ended(daemon, run)
        after = committed_milestones(tmp_path, run)
    assert final.state == "succeeded", final
    assert final.milestones == {"browsed": USERS, "checked": USERS, "done": USERS}
    assert all(after.get(m, 0) >= n for m, n in before.items()), (before, after)
    # a user restored past "browsed" never requests the home page again
    redone = backend.counts["/"] - homes_before
    assert redone <= USERS - before.get("browsed", 0), (point, before, redone)


@pytest.mark.parametrize(
    "point", ["before-first-milestone", "between-milestones", "during-flush", "sigterm"]
)
async def test_crash_recovery_kill_9_loses_nothing_before_the_last_stable_point(
    tmp_path: Path, point: str
) -> None:
    async with running_backends() as (backend,):
        await kill_and_resume(tmp_path, backend, point)


async def test_history_after_a_kill_with_interrupt_mode_lists_every_run(tmp_path: Path) -> None:
    async with running_backends() as (backend,):
        text = SCENARIO.format(users=2, address=backend.address)
        state = STATE.format(flush="50ms")
        async with running_daemon(tmp_path, state_extra=state) as daemon:
            async with ControlClient(daemon.socket_path, timeout=5.0) as client:
                body = SubmitRequest(text=text)
                first = await client.request("POST", "/v1/runs", reply=SubmitReply, body=body)
            await daemon.stop(signal.SIGKILL)
        interrupt = '\n[recovery]\non-start = "interrupt"\n'
        async with running_daemon(tmp_path, state_extra=state, config_extra=interrupt) as daemon:
            quick = text.replace("1500ms", "10ms")
            async with ControlClient(daemon.socket_path, timeout=5.0) as client:
                body = SubmitRequest(text=quick)
                second = await client.request("POST", "/v1/runs", reply=SubmitReply, body=body)
            assert (await wait_ended(daemon, second.run)).state == "succeeded"
            env = {"PROGRESSD_SOCKET": daemon.socket_path}
            listed = await run_ctl("--json", "history", env=env)
            table = await run_ctl("history", "--state", "interrupted", "--since", "1h", env=env)
            bad = await run_ctl("history", "--since", "yesterday", env=env)
            async with ControlClient(daemon.socket_path, timeout=5.0) as client:
                with pytest.raises(ControlError, match=r"limit: expected 1\.\.10000, got 0"):
                    await client.get("/v1/runs?limit=0", RunHistory)
                with pytest.raises(ControlError, match="state: expected one of"):
                    await client.get("/v1/runs?state=done", RunHistory)
    assert listed.code == 0, listed.err
    runs = msgspec.json.decode(listed.out)["runs"]
    assert [(r["run"], r["state"], r["live"]) for r in runs] == [
        (second.run, "succeeded", False),
        (first.run, "interrupted", False),
    ]
    assert runs[0]["summary"]["milestones"] == {"browsed": 2, "checked": 2, "done": 2}
    assert table.code == 0 and first.run in table.out and second.run not in table.out
    assert bad.code != 0 and "since: expected epoch seconds" in bad.err
