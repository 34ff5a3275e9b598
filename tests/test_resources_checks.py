"""Health-check kinds against real servers and subprocesses on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

from progressd.resources import (
    ExecCheck,
    HealthCheckSpec,
    HttpCheck,
    TcpCheck,
    run_check,
)
from progressd.resources.checks import build_check

pytestmark = pytest.mark.integration
T = TypeVar("T")


def _on_uvloop(coro: Coroutine[Any, Any, T]) -> T:
    # Exec probes run on uvloop, as in the daemon: it reaps children itself, where the
    # stdlib 3.11 loop would start a child-watcher thread.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


class StatusServer:
    """A raw HTTP/1.1 server on 127.0.0.1 answering each request with the next status."""

    def __init__(self, statuses: list[int], *, silent: bool = False) -> None:
        self.statuses = statuses
        self.silent = silent
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            if self.silent:
                await reader.read()  # hold the connection open until the client gives up
            else:
                status = self.statuses[(len(self.requests) - 1) % len(self.statuses)]
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # a tcp check connects and leaves without a request
        finally:
            writer.close()


@pytest.fixture
async def http_server() -> AsyncIterator[StatusServer]:
    server = StatusServer([200])
    await server.start()
    yield server
    await server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_tcp_check_passes_when_the_port_accepts(http_server: StatusServer) -> None:
    assert await run_check(TcpCheck(), "127.0.0.1", http_server.port, 1.0) == (
        "passing",
        "connected",
    )


async def test_tcp_check_is_critical_when_refused() -> None:
    result, detail = await run_check(TcpCheck(), "127.0.0.1", _free_port(), 1.0)
    assert result == "critical"
    assert "ConnectionRefusedError" in detail


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "passing"), (204, "passing"), (429, "warning"), (503, "critical"), (404, "critical")],
)
async def test_http_check_maps_status_to_result(
    http_server: StatusServer, status: int, expected: str
) -> None:
    http_server.statuses = [status]
    result, detail = await run_check(HttpCheck("/healthz"), "127.0.0.1", http_server.port, 1.0)
    assert (result, detail) == (expected, f"HTTP {status}")
    assert http_server.requests[0].startswith(b"GET /healthz HTTP/1.1\r\n")


async def test_http_check_accepts_its_expected_status(http_server: StatusServer) -> None:
    http_server.statuses = [301]
    check = build_check(HealthCheckSpec(kind="http", expect_status=301))
    assert (await run_check(check, "127.0.0.1", http_server.port, 1.0))[0] == "passing"


async def test_http_check_times_out_on_a_silent_server() -> None:
    server = StatusServer([], silent=True)
    await server.start()
    try:
        result = await run_check(HttpCheck(), "127.0.0.1", server.port, 0.05)
    finally:
        await server.stop()
    assert result == ("critical", "timed out after 50ms")


async def test_http_check_is_critical_on_garbage() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result, detail = await run_check(HttpCheck(), "127.0.0.1", port, 1.0)
    finally:
        server.close()
        await server.wait_closed()
    assert result == "critical"
    assert "bad HTTP response" in detail


@pytest.mark.parametrize(("code", "expected"), [(0, "passing"), (1, "warning"), (2, "critical")])
def test_exec_check_maps_exit_code_to_result(code: int, expected: str) -> None:
    argv = (sys.executable, "-c", f"print('probe {{address}}'); raise SystemExit({code})")
    result, detail = _on_uvloop(run_check(ExecCheck(argv), "127.0.0.1", 8080, 5.0))
    assert (result, detail) == (expected, f"exit {code}: probe 127.0.0.1:8080")


def test_exec_check_sees_member_in_environment() -> None:
    script = "import os; print(os.environ['PROGRESSD_MEMBER_PORT'])"
    result = _on_uvloop(run_check(ExecCheck((sys.executable, "-c", script)), "h", 9, 5.0))
    assert result == ("passing", "exit 0: 9")


def test_exec_check_kills_the_probe_on_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    check = ExecCheck((sys.executable, "-c", script))
    started = time.monotonic()
    result = _on_uvloop(run_check(check, "127.0.0.1", 1, 0.5))
    assert result == ("critical", "timed out after 500ms")
    assert time.monotonic() - started < 5
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_exec_check_missing_program_is_critical() -> None:
    result, detail = _on_uvloop(run_check(ExecCheck(("/nonexistent/probe",)), "h", 1, 1.0))
    assert result == "critical"
    assert "FileNotFoundError" in detail


def test_exec_check_keeps_only_the_tail_of_a_chatty_probe() -> None:
    script = "import sys; sys.stdout.write('x' * 5_000_000 + '\\nlast line\\n')"
    result = _on_uvloop(run_check(ExecCheck((sys.executable, "-c", script)), "h", 1, 5.0))
    assert result == ("passing", "exit 0: last line")
