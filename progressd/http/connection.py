"""One HTTP/1.1 client connection: an ``asyncio.Protocol`` fed to the ``httptools`` C parser.

Design note. A connection carries at most one exchange at a time (no pipelining): ``send``
writes the request bytes, the parser's callbacks collect status and body, and the end of the
response is reported to the owner (the pool) by a plain method call from ``data_received``. No
task and no future exist per request. The connection decides only what the bytes say:

- complete: the parser's ``on_message_complete`` (Content-Length or chunked framing), the end
  of the headers for a HEAD request, or the peer closing a response that has neither framing
  header (read until close). 1xx interim responses are skipped.
- reusable: the parser's ``should_keep_alive()`` (HTTP/1.1 default, ``Connection: close``,
  HTTP/1.0) and no stray bytes after the response.
- failed: bytes the parser rejects (``malformed-response``), the peer closing mid-response
  (``closed-early``, or ``tls`` for a TLS error). A close before any response byte is reported
  separately (``exchange_lost``) so the pool may retry an idempotent request once.

The owner decides everything else: timeouts, retries, reuse, and what to call back.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from progressd.http.errors import HttpErrorReason, classify_lost_connection
from progressd.http.exchange import Exchange

_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


class ConnectionOwner(Protocol):
    """What a connection reports to (the pool)."""

    def exchange_finished(
        self,
        conn: HttpConnection,
        ex: Exchange,
        *,
        status: int,
        body: bytes,
        body_size: int,
        error: HttpErrorReason | None,
        reusable: bool,
    ) -> None: ...

    def exchange_lost(self, conn: HttpConnection, ex: Exchange, exc: BaseException | None) -> None:
        """The connection closed before any byte of the response arrived."""

    def connection_lost(self, conn: HttpConnection) -> None: ...


class HttpConnection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection carrying one request at a time."""

    __slots__ = (
        "_body_limit",
        "_chunks",
        "_complete",
        "_exchange",
        "_extra",
        "_framed",
        "_got_bytes",
        "_headers_done",
        "_keep_alive",
        "_kept",
        "_owner",
        "_parser",
        "_size",
        "_status",
        "_transport",
        "closed",
        "lost",
        "requests",
    )

    def __init__(self, owner: ConnectionOwner, body_limit: int) -> None:
        self._owner = owner
        self._body_limit = body_limit
        self._transport: asyncio.Transport | None = None
        self._parser = HttpResponseParser(self)
        self._exchange: Exchange | None = None
        self.closed = False
        self.lost = False
        self.requests = 0
        self._status = 0
        self._chunks: list[bytes] = []
        self._kept = 0
        self._size = 0
        self._headers_done = False
        self._keep_alive = False
        self._framed = False
        self._complete = False
        self._extra = False
        self._got_bytes = False

    # -- used by the pool --------------------------------------------------------------------

    def send(self, ex: Exchange) -> None:
        """Write ``ex``'s request; the connection must be open and carry no other exchange."""
        transport = self._transport
        assert transport is not None and self._exchange is None  # the pool hands out idle only
        self._reset_response()
        ex.reused = self.requests > 0
        ex.connection = self
        self.requests += 1
        self._exchange = ex
        transport.write(ex.request.data)

    def abort(self) -> Exchange | None:
        """Drop the connection now; return the exchange it carried (the caller reports it)."""
        ex, self._exchange = self._exchange, None
        self.closed = True
        if self._transport is not None:
            self._transport.abort()
        return ex

    def close(self) -> None:
        """Close an idle connection gracefully."""
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        ex = self._exchange
        if ex is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade):
            if self._complete:
                self._finish(ex, reusable=False)
            else:
                self._fail(ex, "malformed-response")
            return
        if self._complete or (self._headers_done and ex.request.head):
            self._finish(ex, reusable=self._keep_alive and not self._extra)

    def eof_received(self) -> bool | None:
        if self._exchange is None and not self.closed:
            self.closed = True
            self._owner.connection_lost(self)  # idle and closed by the peer: never hand it out
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = True
        self._transport = None
        ex, self._exchange = self._exchange, None
        self._owner.connection_lost(self)
        if ex is None:
            return
        if self._headers_done and not self._framed and not self._complete:
            self._report(ex, None, reusable=False)  # framed by the close itself
        elif not self._got_bytes:
            self._owner.exchange_lost(self, ex, exc)
        else:
            self._report(ex, classify_lost_connection(exc), reusable=False)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:
            self._extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._extra and (len(name) == 14 or len(name) == 17) and name.lower() in _FRAMING:
            self._framed = True

    def on_headers_complete(self) -> None:
        if self._extra:
            return
        parser = self._parser
        self._status = parser.get_status_code()
        self._keep_alive = parser.should_keep_alive()  # reset once the message completes
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._extra:
            return
        self._size += len(body)
        room = self._body_limit - self._kept
        if room > 0:
            piece = body if len(body) <= room else body[:room]
            self._chunks.append(piece)
            self._kept += len(piece)

    def on_message_complete(self) -> None:
        if self._extra:
            return
        if 100 <= self._status < 200:
            self._reset_response()  # an interim response: the real one follows
            self._got_bytes = True
        else:
            self._complete = True

    # -- internals ---------------------------------------------------------------------------

    def _reset_response(self) -> None:
        self._status = 0
        self._chunks = []
        self._kept = 0
        self._size = 0
        self._headers_done = False
        self._keep_alive = False
        self._framed = False
        self._complete = False
        self._extra = False
        self._got_bytes = False

    def _finish(self, ex: Exchange, *, reusable: bool) -> None:
        self._exchange = None
        if ex.request.head:
            self._parser = HttpResponseParser(self)  # httptools would wait for a HEAD body
        if not reusable:
            self.close()
        self._report(ex, None, reusable=reusable)

    def _fail(self, ex: Exchange, reason: HttpErrorReason) -> None:
        self._exchange = None
        self.abort()
        self._report(ex, reason, reusable=False)

    def _report(self, ex: Exchange, error: HttpErrorReason | None, *, reusable: bool) -> None:
        chunks = self._chunks
        self._owner.exchange_finished(
            self,
            ex,
            status=self._status,
            body=chunks[0] if len(chunks) == 1 else b"".join(chunks),
            body_size=self._size,
            error=error,
            reusable=reusable,
        )
