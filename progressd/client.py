"""A small HTTP-over-Unix-socket client for the control API (what ``progressctl`` uses).

Every failure becomes one ``ControlError`` with a one-line message: the daemon is not there
(``cannot reach progressd at PATH: ...``, ``status=None``), did not answer in time, or answered
with an error (``status`` is then the HTTP status and the message is the daemon's own).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import msgspec

from progressd.api import ErrorReply, decoder, encode
from progressd.errors import ControlError

__all__ = ["ControlClient"]

T = TypeVar("T", bound=msgspec.Struct)
_BASE = "http://progressd"


class ControlClient:
    """``async with ControlClient(path) as client: status = await client.get(...)``."""

    def __init__(self, socket_path: str, *, timeout: float = 10.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ControlClient:
        connector = aiohttp.UnixConnector(path=self.socket_path)
        self._session = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path: str, reply: type[T]) -> T:
        """``GET path`` decoded as ``reply``.

        Raises:
            ControlError: unreachable, timed out, an error answer, or an unexpected body.
        """
        return await self.request("GET", path, reply=reply)

    async def request(
        self, method: str, path: str, *, reply: type[T], body: msgspec.Struct | None = None
    ) -> T:
        """One request with an optional JSON ``body``, decoded as ``reply``.

        Raises:
            ControlError: unreachable, timed out, an error answer, or an unexpected body.
        """
        status, data = await self._exchange(method, path, body)
        if status >= 400:
            raise _error_from(status, data)
        try:
            return decoder(reply).decode(data)
        except msgspec.DecodeError as exc:
            raise ControlError(f"unexpected answer from progressd to {path}: {exc}") from None

    async def stream_lines(self, method: str, path: str) -> AsyncIterator[bytes]:
        """The answer's body line by line (newline-delimited JSON streams such as ``watch``).

        Raises:
            ControlError: unreachable or an error answer.
        """
        session = self._require_session()
        try:
            async with session.request(method, _BASE + path) as response:
                if response.status >= 400:
                    raise _error_from(response.status, await response.read())
                async for line in response.content:
                    if line.strip():
                        yield line
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from None

    async def _exchange(
        self, method: str, path: str, body: msgspec.Struct | None
    ) -> tuple[int, bytes]:
        session = self._require_session()
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs = {"data": encode(body), "headers": {"Content-Type": "application/json"}}
        try:
            async with asyncio.timeout(self.timeout):
                async with session.request(method, _BASE + path, **kwargs) as response:
                    return response.status, await response.read()
        except TimeoutError:
            raise ControlError(
                f"progressd at {self.socket_path} did not answer within {self.timeout:g}s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from None

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use ControlClient as 'async with ControlClient(path) as client'")
        return self._session

    def _unreachable(self, exc: BaseException) -> ControlError:
        cause: BaseException = exc
        if isinstance(exc, aiohttp.ClientConnectorError):
            cause = exc.os_error
        reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
        return ControlError(f"cannot reach progressd at {self.socket_path}: {reason}")


def _error_from(status: int, data: bytes) -> ControlError:
    try:
        error = decoder(ErrorReply).decode(data).error
    except msgspec.DecodeError:
        text = data.decode(errors="replace").strip()[:200] or "no details"
        return ControlError(f"progressd answered HTTP {status}: {text}", status=status)
    return ControlError(f"{error.message} ({error.code})", status=status)
