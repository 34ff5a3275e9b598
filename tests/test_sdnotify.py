from __future__ import annotations

import os
import secrets
import socket
import tempfile
from collections.abc import Iterator

import pytest

from progressd.sdnotify import Notifier


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket at a short filesystem path, like systemd's."""
    directory = tempfile.mkdtemp(prefix="pdn-")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield sock, path
    sock.close()
    os.unlink(path)
    os.rmdir(directory)


def test_notifier_ready_sends_ready_and_status(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier(path)
    assert notifier.ready(status="serving")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"
    notifier.close()


def test_notifier_sends_each_message_as_one_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier(path)
    notifier.status("warming up")
    notifier.watchdog()
    notifier.stopping()
    got = [sock.recv(4096) for _ in range(3)]
    assert got == [b"STATUS=warming up", b"WATCHDOG=1", b"STOPPING=1"]
    notifier.close()


def test_notifier_reloading_carries_monotonic_usec(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier(path)
    notifier.reloading()
    notifier.close()
    lines = sock.recv(4096).decode().splitlines()
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=") and lines[1].split("=")[1].isdigit()


def test_notifier_abstract_address() -> None:
    name = f"pd-test-{secrets.token_hex(4)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        notifier = Notifier("@" + name)
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
        notifier.close()
    finally:
        sock.close()


def test_notifier_without_socket_is_a_no_op() -> None:
    notifier = Notifier(None, watchdog_usec=1_000_000)
    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.watchdog_interval is None


def test_notifier_undeliverable_message_is_dropped_not_raised() -> None:
    notifier = Notifier("/nonexistent-progressd-notify/socket")
    assert notifier.ready() is False
    notifier.close()


def test_notifier_from_environ_reads_and_hides_the_variables() -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier.from_environ(env)
    assert notifier.enabled
    assert notifier.watchdog_interval == 1.5
    assert env == {}


def test_notifier_watchdog_for_another_pid_is_ignored() -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}
    assert Notifier.from_environ(env, unset=False).watchdog_interval is None
    assert "NOTIFY_SOCKET" in env
