from __future__ import annotations

import os
import socket
import stat
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from progressd.api import StatusReply
from progressd.config import parse_config
from progressd.control import (
    ApiError,
    ControlServer,
    GroupPolicy,
    PeerCheck,
    PeerCredentials,
    Route,
    json_response,
)
from progressd.daemon import build_daemon
from progressd.errors import ControlError


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


async def conflict(request: web.Request) -> web.Response:
    raise ApiError(409, "conflict", "run r1 is already finished")


async def broken(request: web.Request) -> web.Response:
    raise RuntimeError("boom")


ROUTES = [
    Route("GET", "/v1/hello", hello, "greet"),
    Route("POST", "/v1/conflict", conflict, "always conflicts"),
    Route("GET", "/v1/broken", broken, "always fails"),
]


@asynccontextmanager
async def serving(
    path: Path, routes: Sequence[Route] = ROUTES, peer_check: PeerCheck | None = None
) -> AsyncIterator[ControlServer]:
    server = ControlServer(str(path), peer_check=peer_check, drain_timeout=1.0)
    await server.start(routes)
    try:
        yield server
    finally:
        await server.stop()


async def call(path: Path, method: str, url: str) -> tuple[int, object]:
    connector = aiohttp.UnixConnector(path=str(path))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(method, "http://progressd" + url) as response,
    ):
        return response.status, await response.json()


async def test_control_serves_routes_from_the_table(sock_dir: Path) -> None:
    async with serving(sock_dir / "c.sock"):
        assert await call(sock_dir / "c.sock", "GET", "/v1/hello") == (200, {"hello": "world"})


async def test_control_refuses_a_disallowed_peer_with_403(sock_dir: Path) -> None:
    seen: list[PeerCredentials] = []

    def deny(peer: PeerCredentials) -> bool:
        seen.append(peer)
        return False

    async with serving(sock_dir / "c.sock", peer_check=deny):
        status, body = await call(sock_dir / "c.sock", "GET", "/v1/hello")
    assert status == 403
    assert body == {
        "error": {"code": "forbidden", "message": f"uid {os.getuid()} may not use this progressd"}
    }
    assert seen == [PeerCredentials(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())]


async def test_control_errors_are_json(sock_dir: Path) -> None:
    path = sock_dir / "c.sock"
    async with serving(path):
        missing = await call(path, "GET", "/v1/nope")
        wrong_method = await call(path, "DELETE", "/v1/hello")
        api_error = await call(path, "POST", "/v1/conflict")
        crash = await call(path, "GET", "/v1/broken")
    assert missing == (
        404,
        {"error": {"code": "not_found", "message": "no such endpoint: GET /v1/nope"}},
    )
    assert wrong_method[0] == 405
    assert wrong_method[1] == {
        "error": {
            "code": "method_not_allowed",
            "message": "DELETE is not allowed on /v1/hello (allowed: GET)",
        }
    }
    assert api_error == (
        409,
        {"error": {"code": "conflict", "message": "run r1 is already finished"}},
    )
    assert crash == (
        500,
        {"error": {"code": "internal", "message": "internal error; see the daemon's log"}},
    )


async def test_control_socket_has_the_configured_mode(sock_dir: Path) -> None:
    path = sock_dir / "c.sock"
    async with serving(path):
        info = os.stat(path)
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o660


async def test_control_stop_removes_the_socket(sock_dir: Path) -> None:
    path = sock_dir / "c.sock"
    async with serving(path):
        assert path.exists()
    assert not path.exists()


async def test_control_removes_a_stale_socket(sock_dir: Path) -> None:
    path = sock_dir / "c.sock"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))  # bound, never listening: what a crashed daemon leaves behind
    crashed.close()
    assert path.exists()
    async with serving(path):
        assert await call(path, "GET", "/v1/hello") == (200, {"hello": "world"})


async def test_control_refuses_a_live_socket(sock_dir: Path) -> None:
    path = sock_dir / "c.sock"
    async with serving(path):
        second = ControlServer(str(path))
        with pytest.raises(ControlError, match=f"^another progressd is listening on {path}$"):
            await second.start(ROUTES)
        await second.stop()
        assert await call(path, "GET", "/v1/hello") == (200, {"hello": "world"})


async def test_control_refuses_a_path_that_is_not_a_socket(sock_dir: Path) -> None:
    path = sock_dir / "c.sock"
    path.write_text("not a socket")
    with pytest.raises(ControlError, match="exists and is not a socket"):
        await ControlServer(str(path)).start(ROUTES)
    assert path.read_text() == "not a socket"


def test_group_policy_admits_root_and_the_daemon_user_only_without_group() -> None:
    policy = GroupPolicy("", daemon_uid=1000)
    assert policy(PeerCredentials(pid=1, uid=0, gid=0))
    assert policy(PeerCredentials(pid=1, uid=1000, gid=1000))
    assert not policy(PeerCredentials(pid=1, uid=1001, gid=1001))


def test_group_policy_admits_members_of_the_group() -> None:
    policy = GroupPolicy("root", daemon_uid=1000)  # gid 0 exists everywhere
    assert policy(PeerCredentials(pid=1, uid=4242, gid=0))
    assert not policy(PeerCredentials(pid=1, uid=4242, gid=4242))


def test_group_policy_unknown_group_is_refused() -> None:
    with pytest.raises(ControlError, match="no such group 'no-such-group-pd'"):
        GroupPolicy("no-such-group-pd")


def test_json_response_encodes_api_messages() -> None:
    reply = StatusReply(
        version="0", pid=1, started_at="x", uptime_seconds=1.0, loop_lag_seconds=0.0,
        loop_lag_max_seconds=0.0, runs=0, socket="/s", metrics=None, config=None,
    )  # fmt: skip
    response = json_response(reply)
    assert response.content_type == "application/json"
    assert response.body is not None and b'"runs":0' in bytes(response.body)  # type: ignore[arg-type]


def documented_routes() -> set[tuple[str, str]]:
    text = resources.files("progressd").joinpath("openapi.yaml").read_text()
    document = yaml.safe_load(text)
    assert document["openapi"].startswith("3.")
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


async def test_openapi_documents_every_route_and_only_those(sock_dir: Path) -> None:
    config = parse_config(f'[control]\nsocket = "{sock_dir}/d.sock"\n[metrics]\nlisten = "off"\n')
    daemon = build_daemon(config)  # with every default extension, as `progressd serve` runs
    app = daemon.control.build_app(daemon.routes)
    served = served_routes(app)
    assert ("GET", "/v1/status") in served
    assert served == documented_routes()


async def test_control_socket_directory_that_cannot_exist_is_explained(sock_dir: Path) -> None:
    (sock_dir / "file").write_text("")
    path = sock_dir / "file" / "c.sock"
    expected = rf"^cannot create the control socket {path}: File exists \({sock_dir / 'file'}\)$"
    with pytest.raises(ControlError, match=expected):
        await ControlServer(str(path)).start(ROUTES)
