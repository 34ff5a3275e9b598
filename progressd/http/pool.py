"""A keep-alive connection pool for one member (``host:port``), completing by callback.

Design note. ``request()`` never awaits and never creates a task per request: it takes an idle
connection (most recently used first), or opens a new one while fewer than ``max_connections``
are open or opening, or queues the request. Each response (or failure) is reported once to the
request's ``on_done`` callback, from the I/O callback that completed it. Opening a connection
is the only coroutine: one task per new connection (``loop.create_connection`` does the TCP and
TLS handshakes), amortised over every request the connection then carries.

Timeouts use the injected ``Scheduler`` (the loop by default): a request's deadline covers
queueing, connecting and the exchange, and all of a pool's deadlines share one timer
(``Deadlines``: a timer per request cost more than the rest of the request); a connect timer
cancels a connect attempt. A request that times
out while its connection is still opening leaves the connect running: the new connection then
serves the next waiter. A request whose reused connection turns out to be closed before any
response byte arrived (the server dropped an idle keep-alive connection) is retried once on a
fresh connection when its method is idempotent; otherwise it fails with ``closed-early``.

Invariants: a connection is in at most one of ``_idle`` and ``_busy``; ``len(_idle) +
len(_busy) + _connecting <= max_connections``; ``_waiting`` counts the queued exchanges whose
state is still ``WAITING``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter, deque
from functools import partial

import msgspec

from progressd.http.connection import HttpConnection
from progressd.http.deadlines import Deadlines
from progressd.http.errors import (
    HttpErrorReason,
    PoolClosedError,
    classify_connect_error,
    classify_lost_connection,
)
from progressd.http.exchange import ACTIVE, CONNECTING, DONE, WAITING, Exchange, reported
from progressd.http.request import EncodedRequest, Headers, Origin, encode_request
from progressd.http.result import HttpResult, OnDone
from progressd.http.scheduler import LoopTimers, Scheduler, TimerHandle

_ConnectTask = asyncio.Task[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]


class PoolStatistics(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A point-in-time view of one pool, for telemetry."""

    address: str
    open: int
    idle: int
    in_flight: int
    connecting: int
    waiting: int
    requests: int
    reused: int
    retries: int
    connects: int
    connect_failures: int
    errors: dict[str, int]


class HttpPool:
    """Pooled keep-alive HTTP/1.1 connections to one origin, at most ``max_connections``.

    Raises:
        ValueError: from the constructor when ``max_connections`` or ``body_limit`` is bad.
        RuntimeError: from the constructor when no ``loop`` is given and none is running.
    """

    def __init__(
        self,
        origin: Origin,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        scheduler: Scheduler | None = None,
        max_connections: int = 100,
        connect_timeout: float = 10.0,
        body_limit: int = 1 << 20,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        if body_limit < 0:
            raise ValueError(f"body_limit must be >= 0 bytes, got {body_limit}")
        self.origin = origin
        self._host = origin.host_header
        self._encoded: dict[str, EncodedRequest] = {}  # "METHOD target" -> bytes to send
        self._loop = loop or asyncio.get_running_loop()
        self._scheduler: Scheduler = scheduler or LoopTimers(self._loop)
        self._deadlines = Deadlines(self._scheduler, self._expire)
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._body_limit = body_limit
        self._ssl = (ssl_context or ssl.create_default_context()) if origin.tls else None
        self._idle: dict[HttpConnection, None] = {}
        self._busy: set[HttpConnection] = set()
        self._closing: set[HttpConnection] = set()
        self._connect_tasks: set[_ConnectTask] = set()
        self._waiters: deque[Exchange] = deque()
        self._connecting = 0
        self._waiting = 0
        self.closed = False
        """Whether the pool was closed (a caller holding it must ask its client again).
        Read-only: ``close()`` sets it (an attribute, not a property: senders read it per
        request)."""
        self._drained: asyncio.Future[None] | None = None
        self._requests = self._reused = self._retries = 0
        self._connects = self._connect_failures = 0
        self._errors: Counter[str] = Counter()

    # -- public ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        target: str,
        headers: Headers | None = None,
        body: bytes | None = None,
        *,
        timeout: float | None = None,
        on_done: OnDone,
    ) -> None:
        """Send one request; ``on_done(HttpResult)`` is called exactly once, later.

        Raises:
            ValueError: when the request cannot be encoded (see ``encode_request``).
            PoolClosedError: when the pool was closed.
        """
        if headers is None and body is None:
            encoded = self._encoded.get(method + " " + target)  # a str key: no tuple to collect
            if encoded is None:
                encoded = self._encode_plain(method, target)
        else:
            encoded = encode_request(method, target, self._host, headers, body)
        self.send(encoded, timeout=timeout, on_done=on_done)

    def send(self, request: EncodedRequest, timeout: float | None, on_done: OnDone) -> None:
        """Send an already encoded request; see ``request``. (Positional parameters: the http
        step calls it per request, and a call with keywords costs more.)

        Raises:
            PoolClosedError: when the pool was closed.
        """
        if self.closed:
            raise PoolClosedError(f"HTTP pool for {self.origin.address} is closed")
        scheduler = self._scheduler
        now = scheduler.time()
        ex = Exchange(request, on_done, now)
        if timeout is not None:
            self._deadlines.add(ex, timeout)
        self._requests += 1
        idle = self._idle
        if idle:  # the hot path: _start inlined
            conn = idle.popitem()[0]
            ex.state = ACTIVE
            self._busy.add(conn)
            conn.send(ex)
            if ex.reused:
                self._reused += 1
        else:
            self._dispatch(ex)

    def close(self) -> None:
        """Close every connection; requests waiting or in flight complete with ``cancelled``."""
        if self.closed:
            return
        self.closed = True
        for conn in list(self._idle):
            self._retire(conn).close()
        for conn in list(self._busy):
            ex = self._retire(conn).abort()
            if ex is not None:
                self._complete(ex, 0, b"", 0, "cancelled")
        while self._waiters:
            ex = self._waiters.popleft()
            if ex.state == WAITING:
                self._complete(ex, 0, b"", 0, "cancelled")
        self._waiting = 0
        self._deadlines.close()
        for task in self._connect_tasks:
            task.cancel()

    async def wait_closed(self) -> None:
        """Close the pool and wait until every socket is released."""
        self.close()
        if self._closing or self._connect_tasks:
            if self._drained is None:
                self._drained = self._loop.create_future()
            await asyncio.shield(self._drained)

    def statistics(self) -> PoolStatistics:
        """Connections, queue and counters of this pool right now."""
        return PoolStatistics(
            address=self.origin.address,
            open=len(self._idle) + len(self._busy),
            idle=len(self._idle),
            in_flight=len(self._busy),
            connecting=self._connecting,
            waiting=self._waiting,
            requests=self._requests,
            reused=self._reused,
            retries=self._retries,
            connects=self._connects,
            connect_failures=self._connect_failures,
            errors=dict(self._errors),
        )

    # -- ConnectionOwner ---------------------------------------------------------------------

    def exchange_finished(
        self, conn: HttpConnection, ex: Exchange, error: HttpErrorReason | None, reusable: bool
    ) -> None:
        status, body, size = conn.status, conn.body, conn.body_size  # before reuse
        if reusable and not self.closed:
            self._busy.discard(conn)
            if self._waiters:
                self._release(conn)
            else:
                self._idle[conn] = None
                if error is None and ex.state != DONE:  # the common end: _complete inlined
                    ex.state = DONE
                    result = HttpResult(
                        status=status,
                        latency_s=self._scheduler.time() - ex.started,
                        body=body,
                        body_size=size,
                    )
                    on_done, ex.on_done = ex.on_done, reported
                    try:
                        on_done(result)
                    except Exception as exc:
                        self._callback_failed(exc)
                    return
        else:
            self._retire(conn)
            if not conn.closed:
                conn.close()
            self._fill()
        if ex.state != DONE:
            self._complete(ex, status, body, size, error)

    def exchange_lost(self, conn: HttpConnection, ex: Exchange, exc: BaseException | None) -> None:
        if ex.state == DONE:
            return
        if ex.reused and ex.request.idempotent and not ex.retried and not self.closed:
            ex.retried = True
            self._retries += 1
            self._dispatch(ex)
        else:
            self._complete(ex, 0, b"", 0, classify_lost_connection(exc))

    def connection_lost(self, conn: HttpConnection) -> None:
        if conn in self._idle or conn in self._busy:
            self._retire(conn)
            self._fill()
        self._closing.discard(conn)
        self._check_drained()

    # -- internals ---------------------------------------------------------------------------

    def _encode_plain(self, method: str, target: str) -> EncodedRequest:
        """Encode a request without headers or body, remembering up to 256 of them."""
        encoded = encode_request(method, target, self._host)
        if len(self._encoded) >= 256:
            self._encoded.clear()
        self._encoded[method + " " + target] = encoded
        return encoded

    def _dispatch(self, ex: Exchange) -> None:
        if self._idle:
            conn, _ = self._idle.popitem()
            self._start(conn, ex)
        elif len(self._busy) + self._connecting < self._max:
            self._connect(ex)
        else:
            ex.state = WAITING
            self._waiters.append(ex)
            self._waiting += 1

    def _start(self, conn: HttpConnection, ex: Exchange) -> None:
        ex.state = ACTIVE
        self._busy.add(conn)
        conn.send(ex)
        if ex.reused:
            self._reused += 1

    def _release(self, conn: HttpConnection) -> None:
        waiters = self._waiters
        while waiters:
            ex = waiters.popleft()
            if ex.state == WAITING:
                self._waiting -= 1
                self._start(conn, ex)
                return
        self._idle[conn] = None

    def _retire(self, conn: HttpConnection) -> HttpConnection:
        """Take ``conn`` out of service; it counts as closing until its socket is released."""
        self._busy.discard(conn)
        self._idle.pop(conn, None)
        if not conn.lost:
            self._closing.add(conn)
        return conn

    def _fill(self) -> None:
        """Open connections for waiters while there is room."""
        waiters = self._waiters
        while waiters and len(self._idle) + len(self._busy) + self._connecting < self._max:
            ex = waiters.popleft()
            if ex.state == WAITING:
                self._waiting -= 1
                self._connect(ex)

    def _expire(self, ex: Exchange) -> None:
        state = ex.state
        if state == DONE:
            return
        if state == WAITING:
            self._waiting -= 1
        elif state == ACTIVE and ex.connection is not None:
            self._retire(ex.connection).abort()
        self._complete(ex, 0, b"", 0, "timeout")
        if state == ACTIVE:
            self._fill()

    def _complete(
        self, ex: Exchange, status: int, body: bytes, size: int, error: HttpErrorReason | None
    ) -> None:
        ex.state = DONE  # this also cancels its deadline
        if error is not None:
            self._errors[error] += 1
        latency = self._scheduler.time() - ex.started
        result = HttpResult(
            status=status, latency_s=latency, body=body, body_size=size, error=error
        )
        on_done, ex.on_done = ex.on_done, reported
        try:
            on_done(result)
        except Exception as exc:
            self._callback_failed(exc)

    def _callback_failed(self, exc: Exception) -> None:
        """A caller's bug must not break the connection it rode on: report it to the loop."""
        self._loop.call_exception_handler(
            {"message": f"HTTP on_done callback failed ({self.origin.address})", "exception": exc}
        )

    # -- connecting --------------------------------------------------------------------------

    def _connect(self, ex: Exchange) -> None:
        ex.state = CONNECTING
        self._connecting += 1
        self._connects += 1
        origin = self.origin
        coro = self._loop.create_connection(
            self._new_connection,
            origin.host,
            origin.port,
            ssl=self._ssl,
            server_hostname=origin.host if self._ssl else None,
        )
        task = self._loop.create_task(coro)
        self._connect_tasks.add(task)
        when = self._scheduler.time() + self._connect_timeout
        timer = self._scheduler.call_at(when, task.cancel)
        task.add_done_callback(partial(self._connected, ex, timer))

    def _new_connection(self) -> HttpConnection:
        return HttpConnection(self, self._body_limit)

    def _connected(self, ex: Exchange, timer: TimerHandle, task: _ConnectTask) -> None:
        timer.cancel()
        self._connect_tasks.discard(task)
        self._connecting -= 1
        conn = self._connection_from(task)
        if isinstance(conn, str):
            self._connect_failures += 1
            if ex.state == CONNECTING:
                self._complete(ex, 0, b"", 0, conn)
            self._fill()
        elif ex.state == CONNECTING:
            self._start(conn, ex)
        else:
            self._release(conn)
        self._check_drained()

    def _connection_from(self, task: _ConnectTask) -> HttpConnection | HttpErrorReason:
        """The new connection, or the reason there is none."""
        if task.cancelled():
            return "cancelled" if self.closed else "connect-timeout"
        exc = task.exception()
        if exc is not None:
            return classify_connect_error(exc)
        conn = task.result()[1]
        assert isinstance(conn, HttpConnection)
        if self.closed:
            self._closing.add(conn)
            conn.close()
            return "cancelled"
        if conn.closed:
            if not conn.lost:
                self._closing.add(conn)
            return "closed-early"
        return conn

    def _check_drained(self) -> None:
        drained = self._drained
        idle = not self._closing and not self._connect_tasks
        if drained is not None and not drained.done() and idle:
            drained.set_result(None)
