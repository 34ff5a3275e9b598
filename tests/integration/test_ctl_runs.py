"""``progressctl`` against a real daemon: every command a real subprocess, every run real
(exec steps spawn ``sh``, external steps wait for ``progressctl report``, leases point at real
local backends)."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from harness import DaemonProcess, Result, run_ctl, running_daemon
from run_testkit import leasing_scenario

from progressd.client import ControlClient
from progressd.runs.backends import running_backends
from progressd.runs.messages import (
    EndEvent,
    ProgressEvent,
    SubmitReply,
    SubmitRequest,
    decode_event,
)
from progressd.summary import RunSummary

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

QUICK = """\
version: 2
name: quick
load:
  scenarios:
    - name: s
      users: 2
      iterations: 2
      steps:
        - think: 20ms
        - milestone: half
        - think: 10ms
        - milestone: whole
"""

WORKFLOW = """\
version: 2
name: workflow
load:
  scenarios:
    - name: w
      users: 2
      iterations: 1
      steps:
        - exec: {argv: ["sh", "-c", "echo progress: 1/2; echo progress: 2/2"], timeout: 5s}
        - milestone: built
        - external: {key: approve, timeout: 30s}
        - milestone: approved
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def daemon(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DaemonProcess]:
    async with running_daemon(tmp_path_factory.mktemp("ctl")) as process:
        yield process


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name, text in (("quick.yaml", QUICK), ("workflow.yaml", WORKFLOW)):
        (tmp_path / name).write_text(text)
    return tmp_path


async def ctl(daemon: DaemonProcess, *args: str) -> Result:
    return await run_ctl("--socket", daemon.socket_path, *args)


async def submitted(daemon: DaemonProcess, path: Path) -> str:
    result = await ctl(daemon, "--json", "submit", str(path))
    assert result.code == 0, result.err
    run: str = msgspec.json.decode(result.out)["run"]
    return run


async def test_ctl_submit_watch_show_and_runs(daemon: DaemonProcess, files: Path) -> None:
    run = await submitted(daemon, files / "quick.yaml")
    watched = await ctl(daemon, "watch", run)
    shown, human, listed = await asyncio.gather(
        ctl(daemon, "show", run, "--json"), ctl(daemon, "show", run), ctl(daemon, "runs")
    )
    assert watched.code == 0, watched.err
    assert "milestone half: +2 users" in watched.out
    assert f"run {run} succeeded | 100.0%" in watched.out
    assert f"run {run} (quick)" in watched.out  # the summary table at the end
    summary = msgspec.json.decode(shown.out, type=RunSummary)
    assert (summary.run, summary.state, summary.milestones) == (
        run,
        "succeeded",
        {"half": 2, "whole": 2},
    )
    assert f"run {run} (quick)" in human.out and "succeeded" in human.out
    header, *rows = listed.out.splitlines()
    assert header.split() == [
        "RUN",
        "NAME",
        "STATE",
        "USERS",
        "PROGRESS",
        "REQUESTS",
        "ERRORS",
        "DURATION",
        "ETA",
    ]
    assert any(row.split()[:5] == [run, "quick", "succeeded", "2", "100.0%"] for row in rows)


async def test_ctl_submit_with_users_and_watch(daemon: DaemonProcess, files: Path) -> None:
    result, json_watch = await asyncio.gather(
        ctl(daemon, "submit", str(files / "quick.yaml"), "--users", "3", "--watch"),
        ctl(daemon, "--json", "submit", str(files / "quick.yaml"), "--watch"),
    )
    assert result.code == 0, result.err
    assert result.out.startswith("submitted run ")
    assert "users 0 active 3/3 done" in result.out
    first, *rest = json_watch.out.splitlines()
    assert set(msgspec.json.decode(first)) == {"run"}  # as `submit --json`, then the stream
    end = [decode_event(line.encode()) for line in rest][-1]
    assert json_watch.code == 0 and isinstance(end, EndEvent) and end.summary.users == 2


async def test_ctl_pause_resume_cancel(daemon: DaemonProcess, files: Path) -> None:
    run = await submitted_quietly(daemon, WORKFLOW)
    paused = await ctl(daemon, "pause", run)
    resumed = await ctl(daemon, "resume", run)
    cancelled = await ctl(daemon, "cancel", run)
    watched = await ctl(daemon, "watch", run)
    again = await ctl(daemon, "pause", run)
    assert (paused.code, resumed.code, cancelled.code) == (0, 0, 0)
    assert paused.out == f"run {run} paused (now paused)\n"
    assert resumed.out == f"run {run} resumed (now running)\n"
    assert cancelled.out == f"run {run} cancelled (now cancelled)\n"
    assert watched.code == 1  # like `progressd run`: a run that did not succeed
    assert "state cancelled (cancelled through the control API)" in watched.out
    assert again.code == 1
    assert (
        again.err == f"progressctl: cannot pause run {run}: it has ended (cancelled) (conflict)\n"
    )


async def test_ctl_exec_and_external_steps_end_to_end(daemon: DaemonProcess, files: Path) -> None:
    run = await submitted_quietly(daemon, WORKFLOW)
    watcher = asyncio.ensure_future(ctl(daemon, "watch", run))
    partial = await ctl(
        daemon, "report", run, "approve", "--user", "0", "--done", "1", "--total", "2"
    )
    bad = await run_ctl("--socket", "/nonexistent.sock", "report", run, "approve", "--done", "3")
    final = await ctl(daemon, "--json", "report", run, "approve")
    watched = await watcher
    shown = msgspec.json.decode((await ctl(daemon, "--json", "show", run)).out, type=RunSummary)
    assert partial.code == 0 and partial.out.startswith("report approve: ")
    assert (
        bad.code == 2
        and bad.err == "progressctl: report: give done and total together, or neither\n"
    )
    assert final.code == 0 and set(msgspec.json.decode(final.out)) == {"matched", "kept", "dropped"}
    assert watched.code == 0, watched.out + watched.err
    assert shown.state == "succeeded"
    assert shown.milestones == {"built": 2, "approved": 2}


async def test_ctl_rollback_a_user(daemon: DaemonProcess, files: Path) -> None:
    run = await submitted_quietly(daemon, WORKFLOW)
    await _until_milestone(daemon, run, "built", 2)
    one = await ctl(daemon, "rollback", run, "--user", "1")
    wrong = await ctl(daemon, "rollback", run, "--user", "9")
    await ctl(daemon, "report", run, "approve")
    watched = await ctl(daemon, "watch", run)
    assert one.out == f"run {run}: 1 users rolled back to their last milestone\n"
    assert wrong.code == 1 and "there is no user 9 (bad_request)" in wrong.err
    assert "rollback (manual): 1 users" in watched.out
    assert watched.code == 0


async def _until_milestone(daemon: DaemonProcess, run: str, name: str, users: int) -> None:
    """Follow the run's event stream (in process) until ``users`` users reached ``name``."""
    path = f"/v1/runs/{run}/events?interval=0.05"
    async with ControlClient(daemon.socket_path) as client, asyncio.timeout(10):
        async for line in client.stream_lines("GET", path):
            event = decode_event(line)
            progress = event.progress if isinstance(event, ProgressEvent) else None
            if progress is not None and progress.scenarios[0].milestones.get(name, 0) >= users:
                return
    raise AssertionError(f"run {run}: milestone {name} never reached by {users} users")


async def submitted_quietly(daemon: DaemonProcess, text: str) -> str:
    """Submit in process, for tests about the other commands."""
    body = SubmitRequest(text=text, file="scenario.yaml")
    async with ControlClient(daemon.socket_path) as client:
        return (await client.request("POST", "/v1/runs", reply=SubmitReply, body=body)).run


async def test_ctl_errors_are_one_line_with_exit_codes(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(QUICK.replace("users: 2", "users: lots"))
    rejected, missing, unknown, unreachable = await asyncio.gather(
        ctl(daemon, "submit", str(bad)),
        ctl(daemon, "submit", str(tmp_path / "absent.yaml")),
        ctl(daemon, "show", "nope"),
        run_ctl("--socket", str(tmp_path / "none.sock"), "runs"),
    )
    assert rejected.code == 1 and rejected.out == ""
    assert rejected.err.startswith(
        f'progressctl: {bad}:6:14: load.scenarios[0].users: expected an integer, got "lots"'
    )
    assert rejected.err.endswith("(bad_request)\n") and rejected.err.count("\n") == 1
    assert missing.code == 2
    assert (
        missing.err
        == f"progressctl: cannot read {tmp_path / 'absent.yaml'}: No such file or directory\n"
    )
    assert unknown.code == 1 and unknown.err.startswith("progressctl: no run 'nope'")
    assert unreachable.code == 2 and unreachable.err.count("\n") == 1


async def test_ctl_pools_leases_and_drain(daemon: DaemonProcess, tmp_path: Path) -> None:
    async with running_backends((0, 0)) as backends:
        members = ", ".join(f'"{b.address}"' for b in backends)
        run = await submitted_quietly(daemon, leasing_scenario(members))
        await _until_milestone(daemon, run, "browsed", 2)
        pools, leases, leases_json = await asyncio.gather(
            ctl(daemon, "pools"), ctl(daemon, "leases", run), ctl(daemon, "--json", "leases")
        )
        address = backends[0].address
        drained, unknown = await asyncio.gather(
            ctl(daemon, "drain", "backends", address), ctl(daemon, "drain", "nope", address)
        )
        await ctl(daemon, "cancel", run)
        empty = await ctl(daemon, "pools")
    pool_rows = [line.split() for line in pools.out.splitlines()]
    assert pool_rows[0] == [
        "POOL",
        "RUN",
        "MEMBER",
        "STATE",
        "HOLDERS",
        "CAPACITY",
        "CHECK",
        "CLASS",
        "ON-FAILURE",
    ]
    assert sorted(row[2] for row in pool_rows[1:] if row[1] == run) == sorted(
        b.address for b in backends
    )
    lease_rows = [line.split() for line in leases.out.splitlines()[1:]]
    assert len(lease_rows) == 2 and all(row[1] == run and row[7] == "browsed" for row in lease_rows)
    assert sorted(row[5] for row in lease_rows) == ["0", "1"]
    mine = [
        lease for lease in msgspec.json.decode(leases_json.out)["leases"] if lease["run"] == run
    ]
    assert len(mine) == 2
    assert drained.code == 0 and drained.out.startswith(f"backends/{address} (run {run}): draining")
    assert unknown.code == 1 and "no live run has a pool 'nope'" in unknown.err
    assert empty.out == "no pools (pools come from the resources of live runs)\n"


async def test_ctl_watch_on_a_terminal_draws_the_live_bars(
    daemon: DaemonProcess, files: Path
) -> None:
    run = await submitted(daemon, files / "quick.yaml")
    output, code = await _on_a_terminal(["--socket", daemon.socket_path, "watch", run])
    assert code == 0
    assert f"run {run} (quick) succeeded" in output  # the live header, as `progressd run`
    assert "━" in output and "100.0%" in output  # a rich progress bar, filled
    assert "users 0 active 2/2 done" in output
    assert "milestones: half 2/2 · whole 2/2" in output


async def _on_a_terminal(args: list[str]) -> tuple[str, int]:
    """``progressctl ARGS`` with its stdout on a pseudo-terminal; the text and exit code."""
    controller, terminal = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "progressd.ctl", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=terminal, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"},
    )  # fmt: skip
    os.close(terminal)
    output = await _read_until_closed(controller)
    async with asyncio.timeout(20):
        code = await process.wait()
    return ANSI.sub("", output.decode(errors="replace")), code


async def _read_until_closed(fd: int) -> bytes:
    """Everything written to the terminal until the child closes it (read on the loop)."""
    os.set_blocking(fd, False)
    loop = asyncio.get_running_loop()
    closed: asyncio.Future[None] = loop.create_future()
    chunks: list[bytes] = []

    def readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if chunk:
            chunks.append(chunk)
        elif not closed.done():
            closed.set_result(None)

    loop.add_reader(fd, readable)
    try:
        async with asyncio.timeout(20):
            await closed
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return b"".join(chunks)
