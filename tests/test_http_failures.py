"""The pool against raw asyncio servers that misbehave on purpose, on real 127.0.0.1 sockets.
Timeouts use a manual scheduler: no test sleeps."""

from __future__ import annotations

import asyncio

from http_testkit import Collector, RawServer, closed_port, read_request, silent

from progressd.clock import FakeClock
from progressd.http import HttpPool, Origin
from progressd.scheduling import FakeScheduler

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _pool(port: int, **kw: object) -> HttpPool:
    return HttpPool(Origin("127.0.0.1", port), **kw)  # type: ignore[arg-type]


async def _one(server: RawServer, method: str = "GET", **kw: object) -> tuple[HttpPool, Collector]:
    pool = _pool(server.port, **kw)
    done = Collector()
    pool.request(method, "/", on_done=done)
    await done.wait()
    return pool, done


def _answer(*chunks: bytes, close: bool = True):  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        if not close:
            await reader.read()

    return handler


async def _serve_ok_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_request(reader)
        writer.write(OK)


async def test_pool_reports_malformed_response() -> None:
    async with RawServer(_answer(b"HTPP/1.1 200 OK\r\n\r\n", close=False)) as server:
        pool, done = await _one(server)
    assert (done.results[0].status, done.results[0].error) == (0, "malformed-response")
    assert pool.statistics().errors == {"malformed-response": 1}
    await pool.wait_closed()


async def test_pool_reports_close_before_headers() -> None:
    async with RawServer(_answer()) as server:
        pool, done = await _one(server)
    assert done.results[0].error == "closed-early"
    assert pool.statistics().retries == 0  # a fresh connection is never retried
    await pool.wait_closed()


async def test_pool_reports_close_in_the_middle_of_the_headers() -> None:
    async with RawServer(_answer(b"HTTP/1.1 200 OK\r\nContent-Le")) as server:
        pool, done = await _one(server)
    assert done.results[0].error == "closed-early"
    await pool.wait_closed()


async def test_pool_reports_close_in_the_middle_of_the_body() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
    async with RawServer(_answer(head, b"0123456789")) as server:
        pool, done = await _one(server)
    result = done.results[0]
    assert (result.status, result.error, result.body_size) == (200, "closed-early", 10)
    await pool.wait_closed()


async def test_pool_reports_close_in_the_middle_of_a_chunk() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    async with RawServer(_answer(head, b"a\r\n01234")) as server:
        pool, done = await _one(server)
    assert done.results[0].error == "closed-early"
    await pool.wait_closed()


async def test_pool_reads_a_response_framed_by_close() -> None:
    head = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
    async with RawServer(_answer(head, b"until ", b"the end")) as server:
        pool, done = await _one(server)
        pool.request("GET", "/", on_done=done)
        await done.wait(2)
        assert server.connections == 2
    assert [(r.status, r.body, r.error) for r in done.results] == [
        (200, b"until the end", None)
    ] * 2
    await pool.wait_closed()


async def test_pool_opens_a_new_connection_after_connection_close() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with RawServer(_answer(reply, close=False)) as server:
        pool, done = await _one(server, max_connections=1)
        for _ in range(2):
            pool.request("GET", "/", on_done=done)
        await done.wait(3)
        assert server.connections == 3
    async with RawServer(_answer(old, close=False)) as server:
        pool2, done2 = await _one(server, max_connections=1)
        pool2.request("GET", "/", on_done=done2)
        await done2.wait(2)
        assert server.connections == 2
    assert all(r.body == b"ok" for r in done.results + done2.results)
    assert pool.statistics().reused == 0
    await pool.wait_closed()
    await pool2.wait_closed()


async def test_pool_skips_interim_responses() -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    async with RawServer(_answer(reply, close=False)) as server:
        pool, done = await _one(server)
    assert (done.results[0].status, done.results[0].body) == (200, b"ok")
    await pool.wait_closed()


async def test_pool_reads_close_framing_after_an_interim_response_in_pieces() -> None:
    pieces = (
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConn",
        b"ection: close\r\n\r\n",
    )
    async with RawServer(_answer(*pieces, b"body ", b"until close")) as server:
        pool, done = await _one(server)
    result = done.results[0]
    assert (result.status, result.body, result.error) == (200, b"body until close", None)
    await pool.wait_closed()


async def test_pool_reports_the_status_of_a_response_cut_short() -> None:
    head = b"HTTP/1.1 503 Busy\r\nContent-Length: 10\r\n\r\n"
    async with RawServer(_answer(head, b"12345")) as server:
        pool, done = await _one(server)
    result = done.results[0]
    assert (result.status, result.error, result.body) == (503, "closed-early", b"12345")
    await pool.wait_closed()


async def test_pool_drops_a_connection_that_sends_stray_bytes() -> None:
    async with RawServer(_answer(OK + b"garbage", close=False)) as server:
        pool, done = await _one(server, max_connections=1)
        pool.request("GET", "/", on_done=done)
        await done.wait(2)
        assert server.connections == 2
    assert [r.body for r in done.results] == [b"ok", b"ok"]
    await pool.wait_closed()


async def test_pool_times_out_a_slow_server_and_drops_the_connection() -> None:
    arrived = asyncio.Event()

    clock = FakeScheduler(FakeClock(1000.0))
    async with RawServer(silent(arrived)) as server:
        pool = _pool(server.port, scheduler=clock)
        done = Collector()
        pool.request("GET", "/", timeout=2.0, on_done=done)
        await asyncio.wait_for(arrived.wait(), 10)
        clock.advance(1.999)
        assert done.results == []
        clock.advance(0.001)
        (result,) = done.results
        assert (result.error, result.latency_s) == ("timeout", 2.0)
        assert pool.statistics().open == 0
        await pool.wait_closed()
    assert clock.pending() == 0


async def test_pool_times_out_a_request_waiting_for_a_connection() -> None:
    arrived = asyncio.Event()

    clock = FakeScheduler(FakeClock(1000.0))
    async with RawServer(silent(arrived)) as server:
        pool = _pool(server.port, scheduler=clock, max_connections=1)
        done = Collector()
        pool.request("GET", "/slow", timeout=10.0, on_done=done)
        pool.request("GET", "/queued", timeout=1.0, on_done=done)
        await asyncio.wait_for(arrived.wait(), 10)
        assert pool.statistics().waiting == 1
        clock.advance(1.0)
        assert [r.error for r in done.results] == ["timeout"]
        stats = pool.statistics()
        assert (stats.waiting, stats.in_flight) == (0, 1)
        await pool.wait_closed()
    assert [r.error for r in done.results] == ["timeout", "cancelled"]


async def test_pool_reports_connection_refused() -> None:
    pool = _pool(closed_port())
    done = Collector()
    for _ in range(3):
        pool.request("GET", "/", on_done=done)
    results = await done.wait(3)
    assert [(r.status, r.error) for r in results] == [(0, "connect-refused")] * 3
    stats = pool.statistics()
    assert (stats.connect_failures, stats.open, stats.errors) == (3, 0, {"connect-refused": 3})
    await pool.wait_closed()


async def test_pool_reports_connect_timeout_and_cancels_connect_timers() -> None:
    clock = FakeScheduler(FakeClock(1000.0))
    async with RawServer(_serve_ok_forever) as server:
        pool = _pool(server.port, scheduler=clock, connect_timeout=3.0)
        done = Collector()
        pool.request("GET", "/", on_done=done)
        clock.advance(3.0)  # before the loop could even start the connect
        (result,) = await done.wait()
        assert result.error == "connect-timeout"
        pool.request("GET", "/", on_done=done)
        await done.wait(2)
        assert done.results[1].body == b"ok"
        assert clock.pending() == 0
        await pool.wait_closed()


async def test_pool_retries_an_idempotent_request_once_on_a_stale_connection() -> None:
    async def one_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if server.connections > 1:
            await _serve_ok_forever(reader, writer)
        await read_request(reader)
        writer.write(OK)
        await read_request(reader)  # the next request arrives on a connection we drop

    async with RawServer(one_then_drop) as server:
        pool, done = await _one(server, max_connections=1)
        pool.request("GET", "/", on_done=done)
        await done.wait(2)
        assert (done.results[1].body, pool.statistics().retries) == (b"ok", 1)
    async with RawServer(one_then_drop) as server:
        pool2, done2 = await _one(server, "POST", max_connections=1)
        pool2.request("POST", "/", on_done=done2)
        await done2.wait(2)
        assert (done2.results[1].error, pool2.statistics().retries) == ("closed-early", 0)
    await pool.wait_closed()
    await pool2.wait_closed()


async def test_pool_never_pipelines() -> None:
    reads: list[bytes] = []

    async def one_at_a_time(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            reads.append(data)
            await asyncio.sleep(0)  # give a pipelining client the chance to send more
            writer.write(OK * data.count(b"\r\n\r\n"))

    async with RawServer(one_at_a_time) as server:
        pool = _pool(server.port, max_connections=1)
        done = Collector()
        for i in range(20):
            pool.request("GET", f"/{i}", on_done=done)
        results = await done.wait(20)
        assert server.connections == 1
    assert [r.body for r in results] == [b"ok"] * 20
    assert [r.count(b"GET ") for r in reads] == [1] * 20
    assert [r.split(b" ")[1] for r in reads] == [f"/{i}".encode() for i in range(20)]
    await pool.wait_closed()
