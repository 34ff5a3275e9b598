"""Small local backend servers for the demo and the tests: a shop on 127.0.0.1.

Routes (aiohttp.web, on the caller's loop):

- ``GET /`` -> 200 ``home``; ``GET /health`` -> 200 ``ok``;
- ``POST /login`` -> 200 ``{"token": "tok-N", "user": <the JSON body's "user">}``;
- ``POST /buy?items=N`` -> 200 ``{"ok": true, "items": N}`` with ``Authorization: Bearer tok-...``,
  401 without;
- ``GET /status/{code}`` -> that status; ``GET /slow?ms=N`` -> 200 after N milliseconds.

``Backend.counts`` counts requests per path, so tests can check what a scenario sent.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from itertools import count

from aiohttp import web

__all__ = ["Backend", "running_backends"]


class Backend:
    """One shop server. ``port=0`` picks a free port; ``address`` is ``host:port`` once started.

    Raises:
        OSError: from ``start`` when the address is taken.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.counts: Counter[str] = Counter()
        self._tokens = count(1)
        self._runner: web.AppRunner | None = None
        self._waiters: list[tuple[str, int, asyncio.Future[None]]] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._home)
        app.router.add_get("/health", self._health)
        app.router.add_post("/login", self._login)
        app.router.add_post("/buy", self._buy)
        app.router.add_get("/status/{code}", self._status)
        app.router.add_get("/slow", self._slow)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(
            self._app(), access_log=None, handle_signals=False, shutdown_timeout=0.2
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        sockets = getattr(site._server, "sockets", None) or ()
        if self.port == 0 and sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_requests(self, path: str, n: int) -> None:
        """Wait until ``path`` has been requested at least ``n`` times."""
        if self.counts[path] < n:
            future = asyncio.get_running_loop().create_future()
            self._waiters.append((path, n, future))
            await future

    def _count(self, request: web.Request) -> None:
        path = request.path
        self.counts[path] += 1
        if self._waiters:
            for waiter in [w for w in self._waiters if w[0] == path and self.counts[path] >= w[1]]:
                self._waiters.remove(waiter)
                if not waiter[2].done():
                    waiter[2].set_result(None)

    async def _home(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(text="home")

    async def _health(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(text="ok")

    async def _login(self, request: web.Request) -> web.Response:
        self._count(request)
        user = None
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                body = None
            user = body.get("user") if isinstance(body, dict) else None
        return web.json_response({"token": f"tok-{next(self._tokens)}", "user": user})

    async def _buy(self, request: web.Request) -> web.Response:
        self._count(request)
        if not request.headers.get("Authorization", "").startswith("Bearer tok-"):
            return web.json_response({"error": "log in first"}, status=401)
        items = int(request.query.get("items", "1"))
        return web.json_response({"ok": True, "items": items})

    async def _status(self, request: web.Request) -> web.Response:
        self._count(request)
        return web.Response(status=int(request.match_info["code"]), text="as asked")

    async def _slow(self, request: web.Request) -> web.Response:
        self._count(request)
        await asyncio.sleep(int(request.query.get("ms", "100")) / 1000)
        return web.Response(text="slow")


@asynccontextmanager
async def running_backends(
    ports: Sequence[int] = (0,), host: str = "127.0.0.1"
) -> AsyncIterator[list[Backend]]:
    """Start one backend per port (0: a free one); stop them all on exit."""
    backends = [Backend(host, port) for port in ports]
    try:
        for backend in backends:
            await backend.start()
        yield backends
    finally:
        for backend in backends:
            await backend.stop()


async def _serve(ports: Sequence[int]) -> None:
    async with running_backends(ports) as backends:
        print("serving " + " ".join(f"http://{b.address}/" for b in backends), flush=True)
        await asyncio.Event().wait()  # until interrupted


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m progressd.runs.backends [PORT...]``: serve the shop (default 18081-18083)
    until Ctrl-C, e.g. for ``progressd run config/examples/http_scenario.yaml``."""
    import sys

    import uvloop

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        ports = [int(a) for a in args] or [18081, 18082, 18083]
    except ValueError:
        print("usage: python -m progressd.runs.backends [PORT...]", file=sys.stderr)
        return 2
    try:
        uvloop.run(_serve(ports))
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"backends: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
