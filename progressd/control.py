"""The control socket: HTTP/1.1 + JSON over a Unix socket, served by aiohttp.

Design note. Routes come from one table of ``Route`` records, so a later capability adds
``/v1/runs...`` by handing more records to ``ControlServer.start`` (the daemon collects them);
``progressd/openapi.yaml`` documents the same table and a test keeps the two in step.

Every request passes one middleware that (1) reads the peer's credentials with SO_PEERCRED and
logs them, (2) asks the injectable ``PeerCheck`` whether that peer may talk to the daemon (403
otherwise), and (3) turns every failure into ``{"error": {"code": ..., "message": ...}}``.
The default check admits root, the daemon's own uid, and members of ``control.group``.

The socket file is created with the configured mode (0660) and group. A socket file left by a
crashed daemon (nobody accepts on it) is removed; a live one is refused, so two daemons never
share a socket.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from progressd.api import ErrorBody, ErrorCode, ErrorReply, encode
from progressd.errors import ControlError
from progressd.logs import get_logger

__all__ = [
    "ApiError",
    "ControlServer",
    "GroupPolicy",
    "PeerCheck",
    "PeerCredentials",
    "Route",
    "json_response",
]

log = get_logger("progressd.control")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CRED = struct.Struct("3i")
_CODES: dict[int, ErrorCode] = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    503: "unavailable",
}


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """Who is on the other end of a Unix socket connection (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


PeerCheck = Callable[[PeerCredentials], bool]


class GroupPolicy:
    """Admits root, the daemon's uid, and members (primary or listed) of ``group``.

    Raises:
        ControlError: from the constructor when ``group`` does not exist.
    """

    __slots__ = ("daemon_uid", "gid", "members")

    def __init__(self, group: str = "", *, daemon_uid: int | None = None) -> None:
        self.daemon_uid = os.getuid() if daemon_uid is None else daemon_uid
        self.gid: int | None = None
        self.members: frozenset[str] = frozenset()
        if group:
            try:
                entry = grp.getgrnam(group)
            except KeyError:
                raise ControlError(f"control.group: no such group {group!r}") from None
            self.gid, self.members = entry.gr_gid, frozenset(entry.gr_mem)

    def __call__(self, peer: PeerCredentials) -> bool:
        if peer.uid in (0, self.daemon_uid):
            return True
        if self.gid is None:
            return False
        return peer.gid == self.gid or _user_name(peer.uid) in self.members


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@dataclass(frozen=True, slots=True)
class Route:
    """One control endpoint. ``path`` uses aiohttp/OpenAPI placeholders: ``/v1/runs/{run}``."""

    method: str
    path: str
    handler: Handler
    summary: str


class ApiError(Exception):
    """Raised by a handler to answer with a JSON error."""

    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_response(message: msgspec.Struct, status: int = 200) -> web.Response:
    """A JSON answer carrying one ``progressd.api`` message."""
    return web.Response(body=encode(message), status=status, content_type="application/json")


def _error_response(status: int, code: ErrorCode, message: str) -> web.Response:
    return json_response(ErrorReply(error=ErrorBody(code=code, message=message)), status)


def peer_credentials(request: web.Request) -> PeerCredentials | None:
    """SO_PEERCRED of the request's connection, or ``None`` when it is not a Unix socket."""
    transport = request.transport
    sock: Any = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    pid, uid, gid = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    return PeerCredentials(pid=pid, uid=uid, gid=gid)


class ControlServer:
    """Serves a route table on a Unix socket; ``peer_check`` may be swapped at any time."""

    def __init__(
        self,
        socket_path: str,
        *,
        mode: int = 0o660,
        group: str = "",
        peer_check: PeerCheck | None = None,
        drain_timeout: float = 5.0,
    ) -> None:
        self.socket_path = socket_path
        self.drain_timeout = drain_timeout
        self.mode = mode
        self.group = group
        self._own_policy = peer_check is None
        self.peer_check: PeerCheck = peer_check if peer_check is not None else GroupPolicy(group)
        self._runner: web.AppRunner | None = None
        self._inode: int | None = None

    def build_app(self, routes: Iterable[Route]) -> web.Application:
        """The aiohttp application for ``routes`` behind the credential/error middleware."""
        app = web.Application(middlewares=[self._middleware])
        for route in routes:
            app.router.add_route(route.method, route.path, route.handler)
        return app

    async def start(self, routes: Iterable[Route]) -> None:
        """Create the socket and serve ``routes`` on it.

        Raises:
            ControlError: another daemon is listening on the path, or it cannot be created.
        """
        sock = _bind_unix(self.socket_path, self.mode, self.group)
        self._inode = os.stat(self.socket_path).st_ino
        runner = web.AppRunner(
            self.build_app(routes),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self.drain_timeout,
        )
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    def apply_group(self, group: str) -> None:
        """Re-read ``group`` (membership may have changed) and give the socket file to it.

        Raises:
            ControlError: the group does not exist.
        """
        if self._own_policy:
            self.peer_check = GroupPolicy(group)
        if group != self.group and self._inode is not None:
            gid = grp.getgrnam(group).gr_gid if group else os.getgid()
            os.chown(self.socket_path, -1, gid)
        self.group = group

    async def stop(self) -> None:
        """Stop serving (in-flight requests get ``drain_timeout``); remove our socket file."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        try:
            if self._inode is not None and os.stat(self.socket_path).st_ino == self._inode:
                os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        self._inode = None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = peer_credentials(request)
        fields: dict[str, object] = {"method": request.method, "path": request.path}
        if peer is not None:
            fields |= {"peer_pid": peer.pid, "peer_uid": peer.uid, "peer_gid": peer.gid}
        if peer is None or not self.peer_check(peer):
            log.warning("control request refused", **fields)
            who = f"uid {peer.uid}" if peer else "an unidentified peer"
            return _error_response(403, "forbidden", f"{who} may not use this progressd")
        response = await _answer(request, handler)
        log.info("control request", status=response.status, **fields)
        return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "bad_request" if exc.status < 500 else "internal")
        return _error_response(exc.status, code, _http_message(request, exc))
    except Exception:
        log.exception("control handler failed", method=request.method, path=request.path)
        return _error_response(500, "internal", "internal error; see the daemon's log")


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
    if isinstance(exc, web.HTTPNotFound):
        return f"no such endpoint: {request.method} {request.path}"
    return exc.text or exc.reason


def _bind_unix(path: str, mode: int, group: str) -> socket.socket:
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
        _clear_stale(path)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and exc.filename != path else ""
        message = f"cannot create the control socket {path}: {exc.strerror}{where}"
        raise ControlError(message) from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        if group:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ControlError(f"another progressd is listening on {path}") from None
        raise ControlError(f"cannot create the control socket {path}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def _clear_stale(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ControlError(f"{path} exists and is not a socket; move it or change control.socket")
    if _is_live(path):
        raise ControlError(f"another progressd is listening on {path}")
    os.unlink(path)
    log.info("removed stale control socket", socket=path)


def _is_live(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except BlockingIOError:
        return True  # listening, backlog full
    finally:
        probe.close()
    return True
