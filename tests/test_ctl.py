from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from progressd.api import StatusReply
from progressd.client import ControlClient
from progressd.control import ApiError, ControlServer, Route
from progressd.ctl import COMMANDS, build_parser, main, resolve_socket
from progressd.errors import ControlError


def test_resolve_socket_prefers_flag_then_environment_then_config(tmp_path: Path) -> None:
    config = tmp_path / "progressd.toml"
    config.write_text('[control]\nsocket = "from-config.sock"\n')
    env = {"PROGRESSD_SOCKET": "/env.sock"}
    assert resolve_socket("/flag.sock", env, str(config)) == "/flag.sock"
    assert resolve_socket(None, env, str(config)) == "/env.sock"
    assert resolve_socket(None, {}, str(config)) == str(tmp_path / "from-config.sock")


def test_resolve_socket_defaults_to_var_under_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_socket(None, {}) == str(tmp_path / "var" / "progressd.sock")


def test_ctl_unreachable_daemon_is_one_line_and_exit_2(
    sock_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sock_dir / "absent.sock"
    assert main(["--socket", str(path), "status"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"progressctl: cannot reach progressd at {path}: No such file or directory\n"
    )


def test_ctl_env_socket_is_used(
    sock_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROGRESSD_SOCKET", str(sock_dir / "env.sock"))
    assert main(["status"]) == 2
    assert f"at {sock_dir / 'env.sock'}:" in capsys.readouterr().err


def test_ctl_parser_offers_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exited:
            parser.parse_args(["--json", command.name, "--help"])
        assert exited.value.code == 0
        assert f"usage: progressctl {command.name}" in capsys.readouterr().out


def test_ctl_common_options_work_before_or_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--json", "--socket", "/a.sock", "status"])
    after = parser.parse_args(["status", "--json", "--socket", "/a.sock"])
    neither = parser.parse_args(["status"])
    assert (before.json, before.socket) == (after.json, after.socket) == (True, "/a.sock")
    assert (neither.json, neither.socket) == (False, None)


async def conflict(request: web.Request) -> web.Response:
    raise ApiError(409, "conflict", "run r1 is already finished")


async def hang(request: web.Request) -> web.Response:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def not_json(request: web.Request) -> web.Response:
    return web.Response(text="hello")


@asynccontextmanager
async def server(sock_dir: Path) -> AsyncIterator[str]:
    path = str(sock_dir / "c.sock")
    control = ControlServer(path, drain_timeout=0.1)
    await control.start(
        [
            Route("POST", "/v1/conflict", conflict, ""),
            Route("GET", "/v1/hang", hang, ""),
            Route("GET", "/v1/text", not_json, ""),
        ]
    )
    try:
        yield path
    finally:
        await control.stop()


async def test_client_error_answer_becomes_control_error(sock_dir: Path) -> None:
    async with server(sock_dir) as path, ControlClient(path) as client:
        with pytest.raises(
            ControlError, match=r"^run r1 is already finished \(conflict\)$"
        ) as info:
            await client.request("POST", "/v1/conflict", reply=StatusReply)
    assert info.value.status == 409


async def test_client_times_out_with_a_clear_message(sock_dir: Path) -> None:
    async with server(sock_dir) as path, ControlClient(path, timeout=0.05) as client:
        with pytest.raises(ControlError, match=r"did not answer within 0\.05s$") as info:
            await client.get("/v1/hang", StatusReply)
    assert info.value.status is None


async def test_client_rejects_an_unexpected_body(sock_dir: Path) -> None:
    async with server(sock_dir) as path, ControlClient(path) as client:
        with pytest.raises(ControlError, match=r"^unexpected answer from progressd to /v1/text"):
            await client.get("/v1/text", StatusReply)


async def test_client_unreachable_socket(sock_dir: Path) -> None:
    async with ControlClient(str(sock_dir / "none.sock")) as client:
        with pytest.raises(ControlError, match=r"^cannot reach progressd at .*none\.sock: No such"):
            await client.get("/v1/status", StatusReply)


async def lines(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    for n in range(3):
        await response.write(b'{"n": %d}\n\n' % n)
    await response.write_eof()
    return response


async def test_client_streams_newline_delimited_json(sock_dir: Path) -> None:
    path = str(sock_dir / "s.sock")
    control = ControlServer(path, drain_timeout=0.1)
    await control.start([Route("GET", "/v1/lines", lines, ""), Route("GET", "/v1/gone", hang, "")])
    try:
        async with ControlClient(path) as client:
            got = [line async for line in client.stream_lines("GET", "/v1/lines")]
            with pytest.raises(ControlError, match=r"no such endpoint") as info:
                _ = [line async for line in client.stream_lines("GET", "/v1/missing")]
    finally:
        await control.stop()
    assert got == [b'{"n": 0}\n', b'{"n": 1}\n', b'{"n": 2}\n']
    assert info.value.status == 404
