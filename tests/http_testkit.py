"""Shared harness for the HTTP client tests: a result collector, a raw
asyncio server and an aiohttp server, all real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from progressd.http import HttpResult


class Collector:
    """An ``on_done`` callback that stores results and lets a test await the n-th one."""

    def __init__(self) -> None:
        self.results: list[HttpResult] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def __call__(self, result: HttpResult) -> None:
        self.results.append(result)
        for n, fut in self._waiters:
            if len(self.results) >= n and not fut.done():
                fut.set_result(None)

    async def wait(self, n: int = 1) -> list[HttpResult]:
        if len(self.results) < n:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append((n, fut))
            async with asyncio.timeout(10):
                await fut
        return self.results


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """An asyncio stream server running ``handler`` per connection; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self._handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        for writer in list(self._writers):
            writer.close()
        self._server.close()
        await self._server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """Read one request head and its Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return head, body


def silent(arrived: asyncio.Event) -> Handler:
    """A handler that reads one request, sets ``arrived`` and never answers: it returns only
    when the client closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        arrived.set()
        await reader.read()

    return handle


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def aiohttp_server(app: web.Application, **site: object) -> AsyncIterator[int]:
    """Serve ``app`` on a free 127.0.0.1 port; yield the port."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0, **site)  # type: ignore[arg-type]
    await tcp.start()
    server = tcp._server  # an asyncio.Server, or uvloop's (not a subclass)
    assert server is not None
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        await runner.cleanup()
