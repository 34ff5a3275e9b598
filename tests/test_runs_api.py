"""The runs and resources endpoints, through the real control socket of a real daemon process.

Scenarios are small (a few users, thinks of tens of milliseconds) so every run ends in well under
a second; anything that must wait (an ``external`` step) is released by the test itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from harness import DaemonProcess, running_daemon
from run_testkit import leasing_scenario

from progressd.client import ControlClient
from progressd.errors import ControlError
from progressd.reports import DeliveryCount, Report, ReportBatch
from progressd.runs.backends import running_backends
from progressd.runs.messages import (
    DrainReply,
    DrainRequest,
    EndEvent,
    LeaseList,
    MilestoneEvent,
    PoolList,
    ProgressEvent,
    RollbackEvent,
    RollbackReply,
    RollbackRequest,
    RunEvent,
    RunList,
    RunStateReply,
    StateEvent,
    SubmitReply,
    SubmitRequest,
    decode_event,
)
from progressd.summary import RunSummary

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

QUICK = """
version: 2
name: quick
load:
  scenarios:
    - name: s
      users: 3
      iterations: 2
      steps:
        - think: 20ms
        - milestone: half
        - exec: {argv: ["sh", "-c", "echo progress: 1/1"], timeout: 5s}
        - milestone: whole
"""

WAITING = """
version: 2
name: waiting
load:
  scenarios:
    - name: w
      users: 2
      iterations: 1
      steps:
        - think: 10ms
        - milestone: ready
        - external: {key: go, timeout: 30s}
        - milestone: done
"""


@asynccontextmanager
async def daemon_client(tmp_path: Path) -> AsyncIterator[tuple[DaemonProcess, ControlClient]]:
    async with running_daemon(tmp_path) as daemon, ControlClient(daemon.socket_path) as client:
        yield daemon, client


Shared = tuple[DaemonProcess, ControlClient]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[DaemonProcess, ControlClient]]:
    """One daemon for the tests that only add runs of their own (each starts in ~2 s)."""
    async with daemon_client(tmp_path_factory.mktemp("shared")) as pair:
        yield pair


async def submit(client: ControlClient, text: str, **options: object) -> str:
    body = SubmitRequest(text=text, file="t.yaml", **options)  # type: ignore[arg-type]
    return (await client.request("POST", "/v1/runs", reply=SubmitReply, body=body)).run


async def events(client: ControlClient, run: str, interval: float = 0.05) -> list[RunEvent]:
    path = f"/v1/runs/{run}/events?interval={interval}"
    async with asyncio.timeout(20):
        return [decode_event(line) async for line in client.stream_lines("GET", path)]


async def raw(daemon: DaemonProcess, request: bytes) -> bytes:
    """Send bytes on the control socket; the answer until the daemon closes the connection."""
    reader, writer = await asyncio.open_unix_connection(daemon.socket_path)
    writer.write(request)
    await writer.drain()
    async with asyncio.timeout(10):
        data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


def post(path: str, body: bytes) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: progressd\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body


async def test_runs_api_submit_stream_and_show(shared: Shared) -> None:
    daemon, client = shared
    run = await submit(client, QUICK)
    stream = await events(client, run)
    shown = await client.get(f"/v1/runs/{run}", RunSummary)
    listed = await client.get("/v1/runs", RunList)
    status = await daemon.status()
    assert isinstance(stream[0], StateEvent) and stream[0].reason == "submitted"
    assert isinstance(stream[-1], EndEvent) and stream[-1].summary == shown
    assert isinstance(stream[-2], ProgressEvent) and stream[-2].progress.progress == 1.0
    reached = [e for e in stream if isinstance(e, MilestoneEvent)]
    assert sum(e.users for e in reached if e.milestone == "half") == 6  # 3 users x 2 iterations
    assert shown.state == "succeeded" and shown.passed
    assert shown.milestones == {"half": 3, "whole": 3}
    assert run in [s.run for s in listed.runs]
    assert status.runs == len(listed.runs)


async def test_runs_api_runs_side_by_side_with_a_users_override(shared: Shared) -> None:
    _, client = shared
    first = await submit(client, QUICK, users=5)
    second = await submit(client, QUICK, users=1)
    ends = await asyncio.gather(events(client, first), events(client, second))
    summaries = [stream[-1].summary for stream in ends if isinstance(stream[-1], EndEvent)]
    assert [(s.run, s.users, s.state) for s in summaries] == [
        (first, 5, "succeeded"),
        (second, 1, "succeeded"),
    ]


async def test_runs_api_submit_by_daemon_readable_path(shared: Shared, tmp_path: Path) -> None:
    scenario = tmp_path / "quick.yaml"
    scenario.write_text(QUICK)
    _, client = shared
    body = SubmitRequest(path=str(scenario))
    run = (await client.request("POST", "/v1/runs", reply=SubmitReply, body=body)).run
    end = (await events(client, run))[-1]
    with pytest.raises(ControlError, match=r"cannot read the file: No such file") as missing:
        body = SubmitRequest(path=str(tmp_path / "absent.yaml"))
        await client.request("POST", "/v1/runs", reply=SubmitReply, body=body)
    assert isinstance(end, EndEvent) and end.summary.state == "succeeded"
    assert missing.value.status == 400


async def test_runs_api_bad_scenario_is_400_with_its_position(shared: Shared) -> None:
    bad = QUICK.replace("think: 20ms", "think: soon")
    _, client = shared
    with pytest.raises(ControlError) as caught:
        await submit(client, bad)
    assert caught.value.status == 400
    assert str(caught.value).startswith("t.yaml:10:")
    assert "soon" in str(caught.value) and str(caught.value).endswith("(bad_request)")


WRONG_BODIES = [
    (b"{not json", "invalid request body: JSON is malformed"),
    (b'{"text": "x", "users": "many"}', "Expected `int | null`, got `str` - at `$.users`"),
    (b'{"text": "x", "users": -1}', "Expected `int` >= 0 - at `$.users`"),
    (b'{"txt": "x"}', "Object contains unknown field `txt`"),
    (b'{"text": "x", "path": "/a"}', "give the scenario as exactly one of `text` or `path`"),
    (b'{"path": "rel.yaml"}', "`path` must be absolute"),
    (b"", "this request needs a JSON body (SubmitRequest)"),
]


async def test_runs_api_wrong_bodies_are_400_and_the_daemon_goes_on(shared: Shared) -> None:
    daemon, _ = shared
    before = await daemon.status()
    answers = [await raw(daemon, post("/v1/runs", body)) for body, _ in WRONG_BODIES]
    status = await daemon.status()
    for answer, (_, message) in zip(answers, WRONG_BODIES, strict=True):
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        error = msgspec.json.decode(payload)["error"]
        assert error["code"] == "bad_request" and message in error["message"]
    assert status.runs == before.runs


async def test_runs_api_garbage_on_the_socket_does_not_stop_the_daemon(shared: Shared) -> None:
    daemon, _ = shared
    answer = await raw(daemon, b"\x00\x01 hello there\r\n\r\n")
    reports = await raw(daemon, post("/v1/runs/nope/reports", b'{"reports": []}'))
    status = await daemon.status()
    assert answer.startswith(b"HTTP/1.0 400 Bad Request") and b"Invalid method" in answer
    assert reports.startswith(b"HTTP/1.1 404 ")  # the run is looked up before the body
    assert status.pid == daemon.pid


async def test_runs_api_unknown_run_is_404_and_an_ended_run_is_409(shared: Shared) -> None:
    _, client = shared
    with pytest.raises(ControlError, match=r"no run 'nope' \(recent runs: ") as unknown:
        await client.get("/v1/runs/nope", RunSummary)
    run = await submit(client, QUICK)
    await events(client, run)
    with pytest.raises(ControlError, match=r"cannot pause run \w+: it has ended") as ended:
        await client.request("POST", f"/v1/runs/{run}/pause", reply=RunStateReply)
    with pytest.raises(
        ControlError, match=r"cannot report to run \w+: it has ended \(succeeded\)"
    ) as late:
        body = ReportBatch(reports=[Report(key="go")])
        await client.request("POST", f"/v1/runs/{run}/reports", reply=DeliveryCount, body=body)
    assert (unknown.value.status, ended.value.status, late.value.status) == (404, 409, 409)


async def test_runs_api_pause_resume_cancel(shared: Shared) -> None:
    _, client = shared
    run = await submit(client, WAITING)
    paused = await client.request("POST", f"/v1/runs/{run}/pause", reply=RunStateReply)
    resumed = await client.request("POST", f"/v1/runs/{run}/resume", reply=RunStateReply)
    cancelled = await client.request("POST", f"/v1/runs/{run}/cancel", reply=RunStateReply)
    stream = await events(client, run)
    assert (paused.state, resumed.state, cancelled.state) == ("paused", "running", "cancelled")
    states = [(e.state, e.reason) for e in stream if isinstance(e, StateEvent)]
    assert states[:3] == [("running", "submitted"), ("paused", None), ("running", "resumed")]
    assert states[-1] == ("cancelled", "cancelled through the control API")


async def test_runs_api_reports_release_external_steps(shared: Shared) -> None:
    daemon, client = shared
    run = await submit(client, WAITING)
    path = f"/v1/runs/{run}/reports"
    progress = ReportBatch(reports=[Report(key="go", user=0, done=1, total=2)])
    first = await client.request("POST", path, reply=DeliveryCount, body=progress)
    final = ReportBatch(reports=[Report(key="go", user=0), Report(key="go", user=1)])
    second = await client.request("POST", path, reply=DeliveryCount, body=final)
    bad = await raw(daemon, post(path, b'{"reports": [{"key": "go", "user": "x"}]}'))
    end = (await events(client, run))[-1]
    assert bad.startswith(b"HTTP/1.1 400 ")
    assert b"invalid report batch: Expected `int | null`, got `str` - at `$.reports[0].user`" in bad
    assert first.matched + first.kept == 1 and second.matched + second.kept == 2
    assert isinstance(end, EndEvent)
    assert end.summary.state == "succeeded" and end.summary.milestones["done"] == 2


async def test_runs_api_manual_rollback(shared: Shared) -> None:
    _, client = shared
    run = await submit(client, WAITING)
    await _until_milestone(client, run, "ready", 2)
    path = f"/v1/runs/{run}/rollback"
    one = await client.request("POST", path, reply=RollbackReply, body=RollbackRequest(user=1))
    with pytest.raises(ControlError, match=r"users 0..1; there is no user 7") as wrong:
        await client.request("POST", path, reply=RollbackReply, body=RollbackRequest(user=7))
    every = await client.request("POST", path, reply=RollbackReply)
    batch = ReportBatch(reports=[Report(key="go")])
    await client.request("POST", f"/v1/runs/{run}/reports", reply=DeliveryCount, body=batch)
    stream = await events(client, run)
    assert (one.users, every.users, wrong.value.status) == (1, 2, 400)
    rolled = [e for e in stream if isinstance(e, RollbackEvent)]
    assert sum(e.users for e in rolled) == 3 and {e.reason for e in rolled} == {"manual"}
    end = stream[-1]
    assert isinstance(end, EndEvent) and end.summary.rollbacks == 3


async def _until_milestone(client: ControlClient, run: str, name: str, users: int) -> None:
    async with asyncio.timeout(10):
        async for line in client.stream_lines("GET", f"/v1/runs/{run}/events?interval=0.05"):
            event = decode_event(line)
            if isinstance(event, ProgressEvent):
                reached = event.progress.scenarios[0].milestones.get(name, 0)
                if reached >= users:
                    return
    raise AssertionError(f"milestone {name} never reached by {users} users")


async def test_runs_api_pools_leases_and_drain(shared: Shared) -> None:
    _, client = shared
    async with running_backends((0, 0)) as backends:
        members = ", ".join(f'"{b.address}"' for b in backends)
        run = await submit(client, leasing_scenario(members))
        other = await submit(client, leasing_scenario(members))
        await _until_milestone(client, run, "browsed", 2)
        pools = await client.get("/v1/pools", PoolList)
        leases = await client.get(f"/v1/leases?run={run}", LeaseList)
        everyone = await client.get("/v1/leases", LeaseList)
        address = backends[0].address
        with pytest.raises(ControlError, match=f"exists in runs {run}, {other}; name one"):
            await client.request(
                "POST", f"/v1/pools/backends/members/{address}/drain", reply=DrainReply
            )
        drained = await client.request(
            "POST", f"/v1/pools/backends/members/{address}/drain?run={run}", reply=DrainReply
        )
        undone = await client.request(
            "POST",
            f"/v1/pools/backends/members/{address}/drain?run={run}",
            reply=DrainReply,
            body=DrainRequest(draining=False),
        )
        with pytest.raises(ControlError, match=r"has no member '10\.0\.0\.1:1'"):
            path = f"/v1/pools/backends/members/10.0.0.1:1/drain?run={run}"
            await client.request("POST", path, reply=DrainReply)
        for each in (run, other):
            await client.request("POST", f"/v1/runs/{each}/cancel", reply=RunStateReply)
        after = await client.get("/v1/pools", PoolList)
    assert sorted(p.run or "" for p in pools.pools) == sorted([run, other])
    assert {m.address for m in pools.pools[0].members} == {b.address for b in backends}
    assert len(leases.leases) == 2 and {lease.run for lease in leases.leases} == {run}
    assert sorted(row for lease in leases.leases for row in lease.rows) == [0, 1]
    assert {lease.milestone for lease in leases.leases} == {"browsed"}
    assert len(everyone.leases) == 4
    assert (drained.run, drained.member.state) == (run, "draining")
    assert undone.member.state != "draining"
    assert after.pools == []


async def test_runs_api_shutdown_cancels_live_runs_and_ends_their_streams(tmp_path: Path) -> None:
    async with daemon_client(tmp_path) as (daemon, client):
        run = await submit(client, WAITING)
        await _until_milestone(client, run, "ready", 2)
        lines = client.stream_lines("GET", f"/v1/runs/{run}/events?interval=0.05")
        first = decode_event(await anext(lines))  # the stream is open: the daemon must end it
        stopping = asyncio.ensure_future(daemon.stop())
        rest = [decode_event(line) async for line in lines]
        code = await stopping
    assert isinstance(first, StateEvent)
    assert code == 0
    end = rest[-1]
    assert isinstance(end, EndEvent) and end.summary.state == "cancelled"
    log = daemon.log_text()
    assert '"event": "runs cancelled at shutdown"' in log and run in log
    assert "shutdown hooks did not finish" not in log
