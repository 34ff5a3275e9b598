"""The systemd notify protocol, spoken directly.

systemd hands a ``Type=notify`` service the address of a datagram socket in ``NOTIFY_SOCKET``
(a path, or an abstract address written with a leading ``@``). The service sends newline
separated ``KEY=VALUE`` lines to it: ``READY=1`` once it serves, ``STATUS=...`` for humans,
``WATCHDOG=1`` at least every ``WATCHDOG_USEC`` microseconds, ``STOPPING=1`` when it shuts down.
Without ``NOTIFY_SOCKET`` every call is a no-op, so the daemon runs the same outside systemd.

Sending never raises: a notification that cannot be delivered is logged and dropped, because
the daemon must not die because its supervisor went away.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, MutableMapping

from progressd.logs import get_logger

__all__ = ["Notifier"]

log = get_logger("progressd.sdnotify")


class Notifier:
    """Sends notifications to one ``NOTIFY_SOCKET`` address (or nowhere when ``None``)."""

    __slots__ = ("_address", "_sock", "watchdog_usec")

    def __init__(self, address: str | None = None, *, watchdog_usec: int | None = None) -> None:
        self._address = _sockaddr(address) if address else None
        self._sock: socket.socket | None = None
        self.watchdog_usec = watchdog_usec

    @classmethod
    def from_environ(
        cls, environ: MutableMapping[str, str] | None = None, *, unset: bool = True
    ) -> Notifier:
        """Read ``NOTIFY_SOCKET``/``WATCHDOG_USEC``; ``unset`` hides them from child processes."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        watchdog = _watchdog_usec(env)
        if unset:
            for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                env.pop(key, None)
        return cls(address, watchdog_usec=watchdog)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings: half the supervisor's timeout, or ``None``."""
        if not self.enabled or not self.watchdog_usec:
            return None
        return self.watchdog_usec / 2_000_000

    def send(self, fields: Mapping[str, str]) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; ``True`` when it was delivered."""
        if self._address is None:
            return False
        payload = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            self._socket().sendto(payload, self._address)
        except OSError as exc:
            log.warning("sd_notify failed", error=str(exc), fields=list(fields))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send({"READY": "1", **_status(status)})

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send({"RELOADING": "1", "MONOTONIC_USEC": str(usec)})

    def status(self, text: str) -> bool:
        return self.send({"STATUS": text})

    def watchdog(self) -> bool:
        return self.send({"WATCHDOG": "1"})

    def stopping(self, status: str | None = None) -> bool:
        return self.send({"STOPPING": "1", **_status(status)})

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)
        return self._sock


def _sockaddr(address: str) -> str | bytes:
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    return address


def _status(text: str | None) -> dict[str, str]:
    return {"STATUS": text} if text else {}


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    pid = env.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    usec = env.get("WATCHDOG_USEC", "")
    return int(usec) if usec.isdigit() and int(usec) > 0 else None
