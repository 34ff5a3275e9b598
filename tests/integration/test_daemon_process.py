"""The daemon as users run it: a real ``progressd serve`` subprocess and real tools."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import aiohttp
import msgspec
import pytest
from harness import run_ctl, run_progressd, running_daemon
from prometheus_client.parser import text_string_to_metric_families

from progressd.api import StatusReply

pytestmark = pytest.mark.integration


def exists(path: str) -> bool:
    return os.path.exists(path)


async def test_daemon_answers_progressctl_status_json(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        result = await run_ctl("--socket", daemon.socket_path, "--json", "status")
        human = await run_ctl("status", env={"PROGRESSD_SOCKET": daemon.socket_path})
    assert result.code == 0, result.err
    reply = msgspec.json.decode(result.out, type=StatusReply)
    assert reply.pid == daemon.pid
    assert reply.socket == daemon.socket_path
    assert reply.runs == 0
    assert human.code == 0, human.err
    assert human.out.startswith(f"progressd 0.1.0 is running (pid {daemon.pid})\n")
    assert f"socket    {daemon.socket_path}" in human.out
    assert f'"peer_uid": {os.getuid()}' in daemon.log_text()  # SO_PEERCRED, logged per request


async def test_daemon_metrics_scrape_parses(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        status = await daemon.status()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{status.metrics}/metrics") as response,
        ):
            text = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    build = families["progressd_build_info"].samples[0]
    assert build.labels["version"] == "0.1.0" and build.value == 1
    assert families["progressd_loop_lag_seconds"].type == "histogram"
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert families["progressd_runs"].samples[0].value == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_daemon_stop_signal_exits_zero_and_removes_socket(
    tmp_path: Path, signum: signal.Signals
) -> None:
    async with running_daemon(tmp_path, deadline="3s") as daemon:
        assert exists(daemon.socket_path)
        code = await daemon.stop(signum, within=3.0)
        await daemon.wait_notification("STOPPING", within=1.0)
    assert code == 0
    assert not exists(daemon.socket_path)
    assert '"event": "stopped"' in daemon.log_text()


async def test_second_daemon_on_the_same_socket_is_refused(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        second = await run_progressd("serve", "--config", str(daemon.config_path))
        still = await daemon.status()
    assert second.code == 2
    assert f"progressd: another progressd is listening on {daemon.socket_path}\n" in second.err
    assert "Traceback" not in second.err
    assert still.pid == daemon.pid


async def test_daemon_replaces_a_stale_socket_left_by_a_crash(
    tmp_path: Path, sock_dir: Path
) -> None:
    path = str(sock_dir / "progressd.sock")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with running_daemon(tmp_path / "a", socket_path=path) as crashed:
        await crashed.stop(signal.SIGKILL)
    assert exists(path)
    async with running_daemon(tmp_path / "b", socket_path=path) as daemon:
        assert (await daemon.status()).pid == daemon.pid
    assert "removed stale control socket" in daemon.log_text()


async def test_sd_notify_ready_watchdog_stopping_in_order(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, env={"WATCHDOG_USEC": "100000"}) as daemon:
        ready = await daemon.wait_notification("READY")
        await daemon.wait_notification("WATCHDOG", after=ready, within=5.0)
        await daemon.wait_notification("WATCHDOG", after=ready + 2, within=5.0)
        assert await daemon.stop() == 0
        await daemon.wait_notification("STOPPING", within=2.0)
        keys = [k for k in daemon.notification_keys() if k != "STATUS"]
    assert keys[0] == "READY"
    assert keys[-1] == "STOPPING"
    assert set(keys[1:-1]) == {"WATCHDOG"} and len(keys) >= 4


async def test_sighup_with_a_broken_config_keeps_the_old_one(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon:
        good = daemon.config_path.read_text()
        daemon.config_path.write_text(good.replace('deadline = "5s"', 'deadline = "never"'))
        daemon.process.send_signal(signal.SIGHUP)
        reloading = await daemon.wait_notification("RELOADING")
        answer = daemon.notifications[await daemon.wait_notification("READY", after=reloading)]
        status = await daemon.status()
        daemon.config_path.write_text(good.replace('log-level = "debug"', 'log-level = "info"'))
        daemon.process.send_signal(signal.SIGHUP)
        again = await daemon.wait_notification("RELOADING", after=reloading + 1)
        fixed = daemon.notifications[await daemon.wait_notification("READY", after=again)]
        code = await daemon.stop()
    assert answer["STATUS"].startswith("reload failed: daemon.shutdown-deadline: expected a dur")
    assert status.pid == daemon.pid
    assert fixed["STATUS"].startswith("serving on ")
    assert code == 0
    assert "config reload failed; keeping the running config" in daemon.log_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[control]\nsockte = "x"\n',
            'control.sockte: unknown key; did you mean "socket"? '
            "Valid keys here: group, mode, socket",
        ),
        ("[control]\nsocket = 7\n", "control.socket: expected a string, got 7"),
        (
            '[daemon]\nshutdown-deadline = "soon"\n',
            'daemon.shutdown-deadline: expected a duration like "1s", "250ms" or "1h30m", '
            "got 'soon'",
        ),
    ],
)
async def test_serve_with_a_bad_config_exits_2_with_the_message(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = await run_progressd("serve", "--config", str(config))
    assert result.code == 2
    assert result.err == f"progressd: {message} ({config})\n"


async def test_metrics_port_in_use_is_a_clear_startup_error(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        config = tmp_path / "p.toml"
        config.write_text(f'[control]\nsocket = "c.sock"\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
        result = await asyncio.wait_for(run_progressd("serve", "--config", str(config)), 20)
    finally:
        busy.close()
    assert result.code == 2
    assert f"metrics.listen: cannot listen on 127.0.0.1:{port}: " in result.err
    assert not (tmp_path / "c.sock").exists()
