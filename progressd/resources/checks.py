"""Health-check kinds: ``tcp`` connect, ``http`` GET, ``exec`` a probe command.

Each kind is a small object with one coroutine, ``probe(host, port)``, returning a result and a
one-line detail; ``run_check`` bounds it with the check's timeout and turns every failure into a
``critical`` result, so a probe can never crash the daemon. A probe in flight is exactly one
awaitable; nothing here loops or sleeps (the manager schedules the next check).

- ``tcp``: a connection that opens is ``passing``.
- ``http``: ``GET path`` over a raw connection parsed by httptools (the status line and headers
  are enough): 2xx (or ``expect_status``) ``passing``, 429 ``warning``, anything else ``critical``.
- ``exec``: runs ``argv`` (``{host}``, ``{port}``, ``{address}`` are substituted, and
  ``PROGRESSD_MEMBER_HOST``/``_PORT`` are set): exit 0 ``passing``, 1 ``warning``, else
  ``critical``; killed when the timeout expires.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol, cast

import httptools

from progressd.resources.members import CheckResult
from progressd.resources.pool import format_address
from progressd.resources.spec import HealthCheckConfig
from progressd.units import format_duration

Outcome = tuple[CheckResult, str]
_DETAIL_LIMIT = 200
_OUTPUT_LIMIT = 4096  # bytes of a probe's output kept (its tail); the rest is read and dropped


class HealthCheck(Protocol):
    """One kind of probe. ``probe`` may raise; ``run_check`` maps errors to ``critical``."""

    kind: str

    async def probe(self, host: str, port: int) -> Outcome: ...


class TcpCheck:
    """Passing when a TCP connection to the member opens."""

    kind = "tcp"

    async def probe(self, host: str, port: int) -> Outcome:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(asyncio.Protocol, host, port)
        transport.close()
        return "passing", "connected"


class _StatusProtocol(asyncio.Protocol):
    """Sends one GET and resolves ``status`` when the response headers are complete."""

    def __init__(self, request: bytes, status: asyncio.Future[int]) -> None:
        self._request = request
        self._status = status
        self._parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream connection's transport writes; uvloop's TCPTransport is not an
        # asyncio.Transport subclass, so an isinstance check would fail on the daemon's loop.
        cast(asyncio.WriteTransport, transport).write(self._request)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self._status.done():
                self._status.set_exception(ValueError(f"bad HTTP response: {exc}"))

    def on_headers_complete(self) -> None:
        if not self._status.done():
            self._status.set_result(self._parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._status.done():
            self._status.set_exception(ConnectionError("closed before a response"))


class HttpCheck:
    """GET ``path``: 2xx (or ``expect_status``) passing, 429 warning, anything else critical."""

    kind = "http"

    def __init__(self, path: str = "/", expect_status: int = 200) -> None:
        self.path = path
        self.expect_status = expect_status

    async def probe(self, host: str, port: int) -> Outcome:
        loop = asyncio.get_running_loop()
        status: asyncio.Future[int] = loop.create_future()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {format_address(host, port)}\r\n"
            "User-Agent: progressd-health\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        try:
            transport, _ = await loop.create_connection(
                lambda: _StatusProtocol(request, status), host, port
            )
            try:
                code = await status
            finally:
                transport.close()
        finally:
            _settle(status)
        if 200 <= code < 300 or code == self.expect_status:
            return "passing", f"HTTP {code}"
        return ("warning" if code == 429 else "critical"), f"HTTP {code}"


class ExecCheck:
    """Runs a probe command: exit 0 passing, 1 warning, anything else critical."""

    kind = "exec"

    def __init__(self, argv: tuple[str, ...]) -> None:
        self.argv = argv

    async def probe(self, host: str, port: int) -> Outcome:
        address = format_address(host, port)
        argv = [
            arg.replace("{host}", host).replace("{port}", str(port)).replace("{address}", address)
            for arg in self.argv
        ]
        env = {**os.environ, "PROGRESSD_MEMBER_HOST": host, "PROGRESSD_MEMBER_PORT": str(port)}
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        try:
            assert proc.stdout is not None  # Invariant: stdout=PIPE above.
            output = await _read_tail(proc.stdout, _OUTPUT_LIMIT)
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        code = proc.returncode
        text = output.decode(errors="replace").strip().splitlines()
        detail = f"exit {code}" + (f": {text[-1]}" if text else "")
        return ("passing" if code == 0 else "warning" if code == 1 else "critical"), detail


async def _read_tail(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Read ``stream`` to its end, keeping only the last ``limit`` bytes (a chatty probe
    neither blocks on a full pipe nor fills the daemon's memory)."""
    tail = b""
    while chunk := await stream.read(65536):
        tail = (tail + chunk)[-limit:]
    return tail


def _settle(future: asyncio.Future[int]) -> None:
    """Leave no orphan: a connection closed after the probe gave up must not set (and leak)
    an exception on a future nobody awaits any more."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()  # marks it retrieved


def build_check(config: HealthCheckConfig) -> HealthCheck:
    """The probe a ``health-check`` block describes.

    Raises:
        ValueError: for an unknown kind.
    """
    if config.kind == "http":
        return HttpCheck(config.path, config.expect_status)
    if config.kind == "exec":
        return ExecCheck(config.argv)
    if config.kind == "tcp":
        return TcpCheck()
    raise ValueError(f'unknown health-check kind {config.kind!r}; use "tcp", "http" or "exec"')


async def run_check(check: HealthCheck, host: str, port: int, within: float) -> Outcome:
    """Probe once, for at most ``within`` seconds; any failure or timeout is ``critical``."""
    try:
        async with asyncio.timeout(within):
            result, detail = await check.probe(host, port)
    except TimeoutError:
        return "critical", f"timed out after {format_duration(within)}"
    except OSError as exc:
        return "critical", _describe(exc)
    except Exception as exc:  # a probe never takes the daemon down; the reason is reported
        return "critical", _describe(exc)
    return result, detail[:_DETAIL_LIMIT]


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:_DETAIL_LIMIT]
