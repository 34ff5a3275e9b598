"""One HTTP/1.1 client connection: an ``asyncio.Protocol`` fed to the ``httptools`` C parser.

Design note. A connection carries at most one exchange at a time (no pipelining): ``send``
writes the request bytes, the parser's callbacks collect the body and mark the end of the
message, and the end of the response is reported to the owner (the pool) by a plain method call
from ``data_received``. No task and no future exist per request, and no callback per header:
the bytes of the response head are kept (a reference, not a copy) until its blank line, which
is all a HEAD response and a close-framed response need. The connection decides only what the
bytes say:

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
from typing import Protocol, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from progressd.http.errors import HttpErrorReason, classify_lost_connection
from progressd.http.exchange import Exchange

_FRAMING = (b"\r\ncontent-length:", b"\r\ntransfer-encoding:")


class ConnectionOwner(Protocol):
    """What a connection reports to (the pool)."""

    def exchange_finished(
        self, conn: HttpConnection, ex: Exchange, error: HttpErrorReason | None, reusable: bool
    ) -> None:
        """The exchange ended; its status and body are on ``conn`` (``status``, ``body``,
        ``body_size``) until the connection's next ``send``."""

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
        "_head",
        "_head_done",
        "_interims",
        "_keep_alive",
        "_kept",
        "_owner",
        "_parser",
        "_transport",
        "body",
        "body_size",
        "closed",
        "lost",
        "requests",
        "status",
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
        self.status = 0
        self.body = b""
        """The body kept (at most ``body_limit`` bytes), set when the exchange is reported."""
        self.body_size = 0
        self._chunks: list[bytes] = []
        self._kept = 0
        self._interims = 0
        self._head_done = False
        self._keep_alive = False
        self._head = b""
        self._complete = False
        self._extra = False

    # -- used by the pool --------------------------------------------------------------------

    def send(self, ex: Exchange) -> None:
        """Write ``ex``'s request; the connection must be open and carry no other exchange."""
        transport = self._transport
        assert transport is not None and self._exchange is None  # the pool hands out idle only
        self.status = self.body_size = self._kept = self._interims = 0
        self._chunks.clear()  # not a new list: one less object for the GC per request
        self._head = b""
        self._head_done = self._keep_alive = self._complete = self._extra = False
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
        # uvloop's transports are not asyncio.Transport subclasses: cast, don't check
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        ex = self._exchange
        if ex is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        if not self._head_done:  # kept (not copied): see _framed_by_close
            self._head = self._head + data if self._head else data
        try:
            self._parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade):
            self._note_head()
            self._finish(ex, None if self._complete else "malformed-response", reusable=False)
            return
        if self._complete:  # the head is done: no need to look for its end
            if self._keep_alive and not self._extra and not ex.request.head:
                self._exchange = None  # the common end: _finish and take_body inlined
                self.status = self._parser.get_status_code()
                chunks = self._chunks
                self.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._owner.exchange_finished(self, ex, None, True)
            else:
                self._head_done = True
                self._finish(ex, None, reusable=self._keep_alive and not self._extra)
            return
        self._note_head()  # a response spread over several reads: where its head ends matters
        if ex.request.head and self._head_done:
            self._keep_alive = self._parser.should_keep_alive()  # no body follows a HEAD
            self._finish(ex, None, reusable=self._keep_alive)

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
        if not self._head:
            self._owner.exchange_lost(self, ex, exc)
            return
        self.status = self._parser.get_status_code() if self._head_done else 0
        self.body = self.take_body()
        if self._head_done and not self._complete and _framed_by_close(self._head):
            self._owner.exchange_finished(self, ex, None, False)  # the close ends the body
        else:
            self._owner.exchange_finished(self, ex, classify_lost_connection(exc), False)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:
            self._extra = True  # a second response nobody asked for

    def on_body(self, body: bytes) -> None:
        if self._complete:
            return
        size = len(body)
        self.body_size += size
        if self._kept + size <= self._body_limit:
            self._chunks.append(body)
            self._kept += size
        elif self._kept < self._body_limit:
            self._chunks.append(body[: self._body_limit - self._kept])
            self._kept = self._body_limit

    def on_message_complete(self) -> None:
        if self._complete:
            return
        parser = self._parser
        if 100 <= parser.get_status_code() < 200:  # an interim response: the real one follows
            self._interims += 1
            self._head_done = self._head.count(b"\r\n\r\n") > self._interims
        else:
            self._keep_alive = parser.should_keep_alive()  # reset once the message completes
            self._complete = True

    # -- internals ---------------------------------------------------------------------------

    def _note_head(self) -> None:
        """Whether the final response's head has fully arrived (its blank line, past any 1xx
        heads), for a response not complete after a read: counted only then, not per read."""
        if not self._head_done:
            self._head_done = self._head.count(b"\r\n\r\n") > self._interims

    def take_body(self) -> bytes:
        """The body kept so far (at most ``body_limit`` bytes)."""
        chunks = self._chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _finish(self, ex: Exchange, error: HttpErrorReason | None, *, reusable: bool) -> None:
        self._exchange = None
        self.status = self._parser.get_status_code() if self._head_done else 0
        self.body = self.take_body()
        if error is not None:
            self.abort()
        elif not reusable:
            self.close()
        elif ex.request.head:
            self._parser = HttpResponseParser(self)  # httptools would wait for a HEAD body
        self._owner.exchange_finished(self, ex, error, reusable)


def _framed_by_close(head: bytes) -> bool:
    """Whether ``head`` holds a complete final (non-1xx) response head with neither
    Content-Length nor Transfer-Encoding: such a body ends when the connection closes, any
    other close before the end is an early close. Looking at raw head bytes only on this rare
    path, instead of an ``on_header`` callback per header of every response, saves a third of
    the parser's cost."""
    for part in head.split(b"\r\n\r\n")[:-1]:  # the parts followed by a blank line
        if part.startswith(b"HTTP/") and part[9:10] != b"1":
            lowered = part.lower()
            return not any(name in lowered for name in _FRAMING)
    return False
