"""The daemon runs on uvloop, whose transports differ from asyncio's (they are not
``asyncio.Transport`` subclasses, and callbacks are ordered differently): the main paths again,
on a uvloop loop, against real 127.0.0.1 servers."""

from __future__ import annotations

import asyncio

import uvloop
from aiohttp import web
from http_testkit import Collector, RawServer, aiohttp_server, closed_port, silent

from progressd.clock import FakeClock
from progressd.http import HttpPool, HttpResult, Origin
from progressd.scheduling import FakeScheduler


async def _keep_alive_and_chunked() -> tuple[list[HttpResult], int]:
    async def hello(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"uv")
        await response.write(b"loop")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", hello)
    async with aiohttp_server(app) as port:
        pool = HttpPool(Origin("127.0.0.1", port), max_connections=2)
        done = Collector()
        for _ in range(20):
            pool.request("GET", "/", timeout=5.0, on_done=done)
        results = await done.wait(20)
        connects = pool.statistics().connects
        await pool.wait_closed()
    return results, connects


def test_pool_on_uvloop_reuses_connections_and_reads_chunks() -> None:
    results, connects = uvloop.run(_keep_alive_and_chunked())
    assert [(r.status, r.body, r.error) for r in results] == [(200, b"uvloop", None)] * 20
    assert connects == 2


async def _refused_and_timeout() -> list[str | None]:
    refused = HttpPool(Origin("127.0.0.1", closed_port()))
    done = Collector()
    refused.request("GET", "/", on_done=done)
    await done.wait(1)

    arrived = asyncio.Event()

    clock = FakeScheduler(FakeClock(1000.0))
    async with RawServer(silent(arrived)) as server:
        slow = HttpPool(Origin("127.0.0.1", server.port), scheduler=clock)
        slow.request("GET", "/", timeout=1.0, on_done=done)
        await asyncio.wait_for(arrived.wait(), 10)
        clock.advance(1.0)
        await slow.wait_closed()
    await refused.wait_closed()
    return [r.error for r in done.results]


def test_pool_on_uvloop_reports_refused_and_timeout() -> None:
    assert uvloop.run(_refused_and_timeout()) == ["connect-refused", "timeout"]
