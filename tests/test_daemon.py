from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import pytest
import structlog
from aiohttp import web
from structlog.testing import capture_logs

from progressd.api import StatusReply
from progressd.client import ControlClient
from progressd.config import Config, load_config, parse_config
from progressd.control import PeerCredentials, Route, json_response
from progressd.daemon import Daemon, build_daemon
from progressd.errors import ConfigError
from progressd.sdnotify import Notifier


class RecordingNotifier(Notifier):
    """A notifier that keeps what it would have sent."""

    def __init__(self) -> None:
        super().__init__("@unused")
        self.sent: list[dict[str, str]] = []
        self.changed = asyncio.Event()

    def send(self, fields: Mapping[str, str]) -> bool:
        self.sent.append(dict(fields))
        self.changed.set()
        return True

    def keys(self) -> list[str]:
        return [key for message in self.sent for key in message if key != "STATUS"]

    async def wait_for(self, key: str) -> dict[str, str]:
        async with asyncio.timeout(5):
            while True:
                for message in self.sent:
                    if key in message:
                        return message
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def make_config(sock_dir: Path, tmp_path: Path, extra: str = "") -> Config:
    return parse_config(
        f'[control]\nsocket = "{sock_dir}/d.sock"\n[metrics]\nlisten = "127.0.0.1:0"\n'
        f'[state]\ndirectory = "{tmp_path}/state"\n{extra}'
    )


async def start(daemon: Daemon, notifier: RecordingNotifier) -> asyncio.Task[int]:
    task = asyncio.create_task(daemon.run())
    await notifier.wait_for("READY")
    return task


async def status(daemon: Daemon) -> StatusReply:
    async with ControlClient(daemon.control.socket_path, timeout=5) as client:
        return await client.get("/v1/status", StatusReply)


async def test_daemon_serves_status_until_stopped(sock_dir: Path, tmp_path: Path) -> None:
    threads = threading.active_count()
    notifier = RecordingNotifier()
    daemon = Daemon(make_config(sock_dir, tmp_path), notifier=notifier)
    task = await start(daemon, notifier)
    first = await status(daemon)
    assert threading.active_count() == threads  # one loop, one thread: no metrics thread
    daemon.runs["r1"] = object()
    second = await status(daemon)
    daemon.request_stop("test")
    assert await asyncio.wait_for(task, 5) == 0
    assert (first.pid, first.runs, second.runs) == (os.getpid(), 0, 1)
    assert first.metrics is not None and first.metrics.startswith("127.0.0.1:")
    assert (tmp_path / "state").is_dir()
    assert not (sock_dir / "d.sock").exists()
    assert notifier.keys() == ["READY", "STOPPING"]


async def test_daemon_signals_stop_and_reload_and_handlers_are_restored(
    sock_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "progressd.toml"
    path.write_text(f'[control]\nsocket = "{sock_dir}/d.sock"\n[metrics]\nlisten = "off"\n')
    notifier = RecordingNotifier()
    daemon = Daemon(load_config(path), notifier=notifier)
    task = await start(daemon, notifier)
    path.write_text(path.read_text() + '[daemon]\nlog-level = "debug"\n')
    os.kill(os.getpid(), signal.SIGHUP)
    await notifier.wait_for("RELOADING")
    assert daemon.config.daemon.log_level == "debug"
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 5) == 0
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(signal.SIGTERM)
    assert not loop.remove_signal_handler(signal.SIGHUP)


async def test_daemon_runs_shutdown_hooks_in_reverse_order(sock_dir: Path, tmp_path: Path) -> None:
    notifier = RecordingNotifier()
    daemon = Daemon(make_config(sock_dir, tmp_path), notifier=notifier)
    order: list[str] = []

    def hook(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            order.append(name)

        return run

    daemon.add_startup_hook("open", hook("open"))
    daemon.add_shutdown_hook("release-leases", hook("release-leases"))
    daemon.add_shutdown_hook("snapshot", hook("snapshot"))
    task = await start(daemon, notifier)
    daemon.request_stop("test")
    await asyncio.wait_for(task, 5)
    assert order == ["open", "snapshot", "release-leases"]


async def test_daemon_cuts_a_slow_drain_at_the_deadline(sock_dir: Path, tmp_path: Path) -> None:
    notifier = RecordingNotifier()
    config = make_config(sock_dir, tmp_path, '[daemon]\nshutdown-deadline = "50ms"\n')
    daemon = Daemon(config, notifier=notifier)
    never = asyncio.Event()
    daemon.add_shutdown_hook("stuck", never.wait)
    task = await start(daemon, notifier)
    with capture_logs() as logs:
        daemon.request_stop("test")
        assert await asyncio.wait_for(task, 5) == 0
    assert any(e["event"] == "shutdown hooks did not finish; cut short" for e in logs)


async def test_daemon_second_stop_request_cuts_the_drain_short(
    sock_dir: Path, tmp_path: Path
) -> None:
    notifier = RecordingNotifier()
    daemon = Daemon(make_config(sock_dir, tmp_path), notifier=notifier)
    entered = asyncio.Event()

    async def stuck() -> None:
        entered.set()
        await asyncio.Event().wait()

    daemon.add_shutdown_hook("stuck", stuck)
    task = await start(daemon, notifier)
    daemon.request_stop("SIGINT")
    await asyncio.wait_for(entered.wait(), 5)
    daemon.request_stop("SIGINT")
    assert await asyncio.wait_for(task, 5) == 0


async def test_daemon_cancels_background_tasks_and_names_them(
    sock_dir: Path, tmp_path: Path
) -> None:
    notifier = RecordingNotifier()
    daemon = Daemon(make_config(sock_dir, tmp_path), notifier=notifier)
    task = await start(daemon, notifier)
    waiter = daemon.spawn(asyncio.Event().wait(), "waiter")
    assert daemon.statistics().background_tasks == 2  # the loop-lag probe and ours
    with capture_logs() as logs:
        daemon.request_stop("test")
        await asyncio.wait_for(task, 5)
    assert waiter.cancelled()
    stopped = next(e for e in logs if e["event"] == "stopped")
    assert stopped["cancelled"] == ["loop-lag-probe", "waiter"]
    assert daemon.statistics().background_tasks == 0


async def test_daemon_serves_routes_added_by_extensions(sock_dir: Path, tmp_path: Path) -> None:
    notifier = RecordingNotifier()
    daemon = Daemon(make_config(sock_dir, tmp_path), notifier=notifier)

    async def extra(request: web.Request) -> web.Response:
        return json_response(
            StatusReply(
                version="x", pid=0, started_at="", uptime_seconds=0, loop_lag_seconds=0,
                loop_lag_max_seconds=0, runs=len(daemon.runs), socket="", metrics=None,
                config=None,
            )
        )  # fmt: skip

    daemon.add_routes([Route("GET", "/v1/extra", extra, "an extension route")])
    task = await start(daemon, notifier)
    async with ControlClient(daemon.control.socket_path, timeout=5) as client:
        reply = await client.get("/v1/extra", StatusReply)
    daemon.request_stop("test")
    await asyncio.wait_for(task, 5)
    assert reply.version == "x"


def test_daemon_reload_keeps_the_old_config_when_the_new_one_is_broken(tmp_path: Path) -> None:
    path = tmp_path / "progressd.toml"
    path.write_text('[control]\nsocket = "d.sock"\n[daemon]\nlog-level = "info"\n')
    notifier = RecordingNotifier()
    daemon = Daemon(load_config(path), notifier=notifier)
    before = daemon.config
    path.write_text('[control]\nsocket = "d.sock"\n[daemon]\nlog-levle = "debug"\n')
    with capture_logs() as logs:
        assert daemon.reload() is False
    assert daemon.config is before
    failure = next(
        e for e in logs if e["event"] == "config reload failed; keeping the running config"
    )
    assert 'daemon.log-levle: unknown key; did you mean "log-level"?' in failure["error"]
    assert notifier.sent[-2]["RELOADING"] == "1"
    assert notifier.sent[-1]["READY"] == "1"
    assert notifier.sent[-1]["STATUS"].startswith("reload failed: daemon.log-levle")


def test_daemon_reload_applies_and_flags_restart_only_changes(tmp_path: Path) -> None:
    path = tmp_path / "progressd.toml"
    path.write_text('[control]\nsocket = "d.sock"\n')
    daemon = Daemon(load_config(path), notifier=RecordingNotifier())
    path.write_text('[control]\nsocket = "e.sock"\n[daemon]\nlog-level = "warning"\n')
    with capture_logs() as logs:
        assert daemon.reload() is True
    assert daemon.config.daemon.log_level == "warning"
    assert daemon.control.socket_path == str(tmp_path / "d.sock")
    restart = next(e for e in logs if e["event"] == "changed settings take effect after a restart")
    assert restart["keys"] == ["control.socket"]


def test_daemon_reload_regroups_the_socket(sock_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "progressd.toml"
    path.write_text(f'[control]\nsocket = "{sock_dir}/d.sock"\n')
    daemon = Daemon(load_config(path), notifier=RecordingNotifier())
    assert not daemon.control.peer_check(PeerCredentials(pid=1, uid=4242, gid=0))
    path.write_text(f'[control]\nsocket = "{sock_dir}/d.sock"\ngroup = "root"\n')
    assert daemon.reload() is True
    assert daemon.control.peer_check(PeerCredentials(pid=1, uid=4242, gid=0))


async def test_daemon_unusable_state_directory_is_a_config_error(
    sock_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    config = parse_config(
        f'[control]\nsocket = "{sock_dir}/d.sock"\n[metrics]\nlisten = "off"\n'
        f'[state]\ndirectory = "{tmp_path}/file/state"\n'
    )
    daemon = Daemon(config, notifier=RecordingNotifier())
    with pytest.raises(ConfigError, match=r"^state\.directory: cannot create the state directory"):
        await daemon.run()
    assert not (sock_dir / "d.sock").exists()


def test_build_daemon_installs_the_given_extensions(sock_dir: Path, tmp_path: Path) -> None:
    installed: list[Daemon] = []

    def install(daemon: Daemon) -> None:
        installed.append(daemon)
        daemon.add_routes([Route("GET", "/v1/ext", daemon.routes[0].handler, "extension")])

    daemon = build_daemon(make_config(sock_dir, tmp_path), extensions=[install])
    assert installed == [daemon]
    assert [r.path for r in daemon.routes] == ["/v1/status", "/v1/ext"]
