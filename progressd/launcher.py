"""Start ``progressd serve`` as a child process and know, without polling, when it is ready.

The launcher plays systemd's part: it binds a datagram socket on an abstract address, passes it
as ``NOTIFY_SOCKET``, and waits for ``READY=1``. Every wait is bounded and fails with the
daemon's log when the child exits early. Used by ``python -m progressd.demo`` and the test
harness (``tests/harness.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from progressd.api import StatusReply
from progressd.client import ControlClient
from progressd.errors import ProgressdError

__all__ = ["DaemonProcess", "LaunchError", "launch_daemon", "write_config"]


class LaunchError(ProgressdError):
    """Raised when a launched daemon exits early or misses a deadline; carries its log."""


def write_config(
    directory: Path,
    *,
    socket_path: str,
    metrics: str = "127.0.0.1:0",
    deadline: str = "5s",
    extra: str = "",
    state: str = "",
) -> Path:
    """Write a ``progressd.toml`` for a throwaway daemon; returns its path. ``state``: more
    ``[state]`` keys (``flush-interval = "100ms"``...)."""
    path = directory / "progressd.toml"
    path.write_text(
        f'[control]\nsocket = "{socket_path}"\n\n[metrics]\nlisten = "{metrics}"\n\n'
        f'[state]\ndirectory = "state"\n{state}\n[daemon]\nshutdown-deadline = "{deadline}"\n'
        f'log-format = "json"\nlog-level = "debug"\n{extra}',
        encoding="utf-8",
    )
    return path


@dataclass(slots=True)
class DaemonProcess:
    """A running child daemon, its files and the notifications it sent."""

    process: asyncio.subprocess.Process
    config_path: Path
    socket_path: str
    log_path: Path
    notify: socket.socket
    notifications: list[dict[str, str]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def notification_keys(self) -> list[str]:
        """The notification keys received so far, in order (``READY``, ``WATCHDOG``...)."""
        self._drain_nowait()
        return [key for message in self.notifications for key in message]

    async def wait_notification(self, key: str, *, after: int = 0, within: float = 10.0) -> int:
        """Index of the first notification at or after ``after`` carrying ``key``.

        Raises:
            LaunchError: the daemon exited, or ``within`` seconds passed first.
        """
        try:
            async with asyncio.timeout(within):
                while True:
                    self._drain_nowait()
                    for index in range(after, len(self.notifications)):
                        if key in self.notifications[index]:
                            return index
                    if self.process.returncode is not None:
                        code = self.process.returncode
                        raise LaunchError(self._explain(f"exited with {code} before {key}="))
                    await self._wait_datagram_or_exit()
        except TimeoutError:
            raise LaunchError(self._explain(f"sent no {key}= within {within:g}s")) from None

    async def status(self) -> StatusReply:
        """``GET /v1/status`` on the daemon's socket (5 s timeout)."""
        async with ControlClient(self.socket_path, timeout=5.0) as client:
            return await client.get("/v1/status", StatusReply)

    async def stop(self, signum: int = signal.SIGTERM, *, within: float = 15.0) -> int:
        """Send ``signum`` and wait for the exit code.

        Raises:
            LaunchError: the daemon did not exit within ``within`` seconds.
        """
        if self.process.returncode is None:
            self.process.send_signal(signum)
        try:
            return await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            raise LaunchError(self._explain(f"did not exit within {within:g}s")) from None

    def _explain(self, what: str) -> str:
        return f"progressd (pid {self.pid}) {what}; its log:\n{self.log_text()}"

    def _drain_nowait(self) -> None:
        while self.notify.fileno() != -1:
            try:
                data = self.notify.recv(65536)
            except BlockingIOError:
                return
            self._record(data)

    def _record(self, data: bytes) -> None:
        lines = data.decode(errors="replace").splitlines()
        self.notifications.append(dict(line.partition("=")[::2] for line in lines if line))

    async def _wait_datagram_or_exit(self) -> None:
        loop = asyncio.get_running_loop()
        received = asyncio.ensure_future(loop.sock_recv(self.notify, 65536))
        exited = asyncio.ensure_future(self.process.wait())
        try:
            await asyncio.wait({received, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (received, exited):
                future.cancel()
            await asyncio.gather(received, exited, return_exceptions=True)
        if received.done() and not received.cancelled() and received.exception() is None:
            self._record(received.result())


def _notify_socket() -> tuple[socket.socket, str]:
    name = f"progressd-launch-{os.getpid()}-{secrets.token_hex(4)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.bind(b"\0" + name.encode())
    sock.setblocking(False)
    return sock, "@" + name


@contextlib.asynccontextmanager
async def launch_daemon(
    workdir: Path,
    *,
    config_extra: str = "",
    state_extra: str = "",
    metrics: str = "127.0.0.1:0",
    deadline: str = "5s",
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 15.0,
    socket_path: str | None = None,
) -> AsyncIterator[DaemonProcess]:
    """Run ``progressd serve`` in ``workdir`` until the block ends (then SIGTERM, then SIGKILL).

    The control socket lives at ``socket_path``, by default in a short private directory (Unix
    socket paths are limited to 107 bytes); the config, state and log live in ``workdir``.

    Raises:
        LaunchError: the daemon exited or was not ready within ``ready_timeout``.
    """
    sockdir = tempfile.mkdtemp(prefix="pd-")
    notify, address = _notify_socket()
    socket_path = socket_path or os.path.join(sockdir, "progressd.sock")
    config = write_config(
        workdir,
        socket_path=socket_path,
        metrics=metrics,
        deadline=deadline,
        extra=config_extra,
        state=state_extra,
    )
    log_path = workdir / "progressd.log"
    child_env: dict[str, Any] = {**os.environ, **(env or {}), "NOTIFY_SOCKET": address}
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "progressd", "serve", "--config", str(config),
            cwd=workdir, env=child_env, stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file, stderr=log_file,
        )  # fmt: skip
    daemon = DaemonProcess(process, config, socket_path, log_path, notify)
    try:
        await daemon.wait_notification("READY", within=ready_timeout)
        yield daemon
    finally:
        await _reap(daemon)
        notify.close()
        shutil.rmtree(sockdir, ignore_errors=True)


async def _reap(daemon: DaemonProcess) -> None:
    if daemon.process.returncode is not None:
        return
    try:
        await daemon.stop(signal.SIGTERM, within=10.0)
    except LaunchError:
        daemon.process.kill()
        await daemon.process.wait()
