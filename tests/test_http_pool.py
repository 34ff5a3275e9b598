"""The pool against a real aiohttp server on 127.0.0.1: the paths a load test takes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from http_testkit import Collector, aiohttp_server

from progressd.http import HttpClient, HttpPool, HttpResult, Origin, PoolClosedError

BIG = bytes(range(256)) * (5 * 4096)  # 5 MiB


class Backend:
    """An aiohttp app that remembers which client ports it served and how many at once."""

    def __init__(self) -> None:
        self.peers: set[object] = set()
        self.active = 0
        self.max_active = 0
        self.release = asyncio.Event()
        self.release.set()
        self.target = 1
        self.reached = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/hello", self.hello)
        app.router.add_post("/echo", self.echo)
        app.router.add_get("/chunked", self.chunked)
        app.router.add_get("/big", self.big)
        app.router.add_get("/empty", self.empty)
        app.router.add_get("/gate", self.gate)
        return app

    def _seen(self, request: web.Request) -> None:
        assert request.transport is not None
        self.peers.add(request.transport.get_extra_info("peername"))

    async def hello(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.Response(text="hello")

    async def echo(self, request: web.Request) -> web.Response:
        self._seen(request)
        doc = await request.json()
        return web.json_response({"got": doc, "type": request.content_type}, status=201)

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for i in range(5):
            await response.write(f"part{i};".encode())
        await response.write_eof()
        return response

    async def big(self, request: web.Request) -> web.Response:
        return web.Response(body=BIG)

    async def empty(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def gate(self, request: web.Request) -> web.Response:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        if self.active >= self.target:
            self.reached.set()
        await self.release.wait()
        self.active -= 1
        return web.Response(text="through")


@pytest.fixture
async def backend() -> AsyncIterator[tuple[Backend, int]]:
    state = Backend()
    async with aiohttp_server(state.app()) as port:
        yield state, port


async def _pool(port: int, **kw: int) -> HttpPool:
    return HttpPool(Origin("127.0.0.1", port), **kw)


async def test_pool_get_returns_status_and_body(backend: tuple[Backend, int]) -> None:
    pool = await _pool(backend[1])
    done = Collector()
    pool.request("GET", "/hello", on_done=done)
    (result,) = await done.wait()
    assert (result.status, result.body, result.error, result.ok) == (200, b"hello", None, True)
    assert result.body_size == 5 and 0 < result.latency_s < 10
    await pool.wait_closed()


async def test_pool_post_sends_json_body(backend: tuple[Backend, int]) -> None:
    pool = await _pool(backend[1])
    done = Collector()
    body = json.dumps({"user": 7, "items": ["a", "b"]}).encode()
    pool.request("POST", "/echo", {"Content-Type": "application/json"}, body, on_done=done)
    (result,) = await done.wait()
    assert result.status == 201
    assert json.loads(result.body) == {
        "got": {"user": 7, "items": ["a", "b"]},
        "type": "application/json",
    }
    await pool.wait_closed()


async def test_pool_reuses_keep_alive_connections(backend: tuple[Backend, int]) -> None:
    state, port = backend
    pool = await _pool(port)
    done = Collector()

    def again(result: HttpResult) -> None:
        done(result)
        if len(done.results) < 50:
            pool.request("GET", "/hello", on_done=again)

    pool.request("GET", "/hello", on_done=again)
    results = await done.wait(50)
    assert all(r.status == 200 for r in results)
    assert len(state.peers) == 1
    stats = pool.statistics()
    assert (stats.connects, stats.reused, stats.requests, stats.open) == (1, 49, 50, 1)
    await pool.wait_closed()


async def test_pool_reads_chunked_responses(backend: tuple[Backend, int]) -> None:
    pool = await _pool(backend[1])
    done = Collector()
    for _ in range(3):
        pool.request("GET", "/chunked", on_done=done)
    results = await done.wait(3)
    assert [r.body for r in results] == [b"part0;part1;part2;part3;part4;"] * 3
    await pool.wait_closed()


async def test_pool_reads_large_bodies_and_caps_what_it_keeps(
    backend: tuple[Backend, int],
) -> None:
    full, capped = await _pool(backend[1], body_limit=8 << 20), await _pool(backend[1])
    done = Collector()
    full.request("GET", "/big", on_done=done)
    capped.request("GET", "/big", on_done=done)
    results = await done.wait(2)
    by_len = sorted(results, key=lambda r: len(r.body))
    assert by_len[0].body == BIG[: 1 << 20] and by_len[0].body_size == len(BIG)
    assert by_len[1].body == BIG and by_len[1].body_size == len(BIG)
    await full.wait_closed()
    await capped.wait_closed()


async def test_pool_handles_head_and_no_content_on_one_connection(
    backend: tuple[Backend, int],
) -> None:
    pool = await _pool(backend[1], max_connections=1)
    done = Collector()
    pool.request("HEAD", "/hello", on_done=done)
    pool.request("GET", "/empty", on_done=done)
    pool.request("GET", "/hello", on_done=done)
    results = await done.wait(3)
    assert [(r.status, r.body) for r in results] == [(200, b""), (204, b""), (200, b"hello")]
    assert pool.statistics().connects == 1
    await pool.wait_closed()


async def test_pool_never_exceeds_max_connections(backend: tuple[Backend, int]) -> None:
    state, port = backend
    state.release.clear()
    state.target = 3
    pool = await _pool(port, max_connections=3)
    done = Collector()
    for _ in range(10):
        pool.request("GET", "/gate", on_done=done)
    await asyncio.wait_for(state.reached.wait(), 10)
    stats = pool.statistics()
    assert (stats.in_flight, stats.waiting, stats.connecting) == (3, 7, 0)
    state.release.set()
    results = await done.wait(10)
    assert [r.body for r in results] == [b"through"] * 10
    assert state.max_active == 3 and pool.statistics().connects == 3
    await pool.wait_closed()


async def test_pool_close_cancels_waiting_and_in_flight(backend: tuple[Backend, int]) -> None:
    state, port = backend
    state.release.clear()
    pool = await _pool(port, max_connections=1)
    done = Collector()
    pool.request("GET", "/gate", on_done=done)
    pool.request("GET", "/gate", on_done=done)
    await asyncio.wait_for(state.reached.wait(), 10)
    await pool.wait_closed()
    assert [r.error for r in done.results] == ["cancelled", "cancelled"]
    with pytest.raises(PoolClosedError, match="is closed"):
        pool.request("GET", "/hello", on_done=done)
    state.release.set()


async def test_pool_survives_a_failing_callback(backend: tuple[Backend, int]) -> None:
    pool = await _pool(backend[1], max_connections=1)
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx["message"]))

    def broken(result: HttpResult) -> None:
        raise RuntimeError("caller bug")

    pool.request("GET", "/hello", on_done=broken)
    done = Collector()
    pool.request("GET", "/hello", on_done=done)
    await done.wait()
    assert reported == [f"HTTP on_done callback failed (127.0.0.1:{backend[1]})"]
    assert done.results[0].status == 200
    stats = pool.statistics()
    assert (stats.connects, stats.reused) == (1, 1)
    await pool.wait_closed()


async def test_client_keeps_one_pool_per_member(backend: tuple[Backend, int]) -> None:
    client = HttpClient(max_connections_per_member=2)
    port = backend[1]
    assert client.pool(f"127.0.0.1:{port}") is client.pool(f"127.0.0.1:{port}")
    done = Collector()
    client.pool(f"127.0.0.1:{port}").request("GET", "/hello", on_done=done)
    await done.wait()
    (stats,) = client.statistics()
    assert stats.address == f"127.0.0.1:{port}" and stats.requests == 1
    pool = client.pool(f"127.0.0.1:{port}")
    client.discard(Origin("127.0.0.1", port))
    assert client.statistics() == []
    await pool.wait_closed()
    await client.wait_closed()
    with pytest.raises(ValueError, match=r"like 127\.0\.0\.1:8080"):
        client.pool("localhost")
