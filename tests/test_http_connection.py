"""HttpConnection fed byte by byte: how responses split across reads are framed, without a
network (the pool tests cover the real sockets)."""

from __future__ import annotations

import asyncio

import pytest

from progressd.http.connection import HttpConnection
from progressd.http.errors import HttpErrorReason
from progressd.http.exchange import Exchange
from progressd.http.request import encode_request
from progressd.http.result import HttpResult


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


class FakeOwner:
    """Records what the connection reports, the way the pool would read it."""

    def __init__(self) -> None:
        self.finished: list[tuple[int, bytes, int, HttpErrorReason | None, bool]] = []
        self.lost: list[Exchange] = []

    def exchange_finished(
        self, conn: HttpConnection, ex: Exchange, error: HttpErrorReason | None, reusable: bool
    ) -> None:
        self.finished.append((conn.status, conn.body, conn.body_size, error, reusable))

    def exchange_lost(self, conn: HttpConnection, ex: Exchange, exc: BaseException | None) -> None:
        self.lost.append(ex)

    def connection_lost(self, conn: HttpConnection) -> None:
        pass


def _ignore(result: HttpResult) -> None:
    pass


def _connection(body_limit: int = 1 << 20) -> tuple[HttpConnection, FakeOwner, FakeTransport]:
    owner, transport = FakeOwner(), FakeTransport()
    conn = HttpConnection(owner, body_limit)
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, owner, transport


def _send(conn: HttpConnection, method: str = "GET") -> Exchange:
    ex = Exchange(encode_request(method, "/", "h"), _ignore, 0.0)
    conn.send(ex)
    return ex


def _feed_bytewise(conn: HttpConnection, data: bytes) -> None:
    for i in range(len(data)):
        conn.data_received(data[i : i + 1])


def test_connection_frames_content_length_fed_byte_by_byte() -> None:
    conn, owner, transport = _connection()
    _send(conn)
    _feed_bytewise(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert owner.finished == [(200, b"hello", 5, None, True)]
    assert transport.written == [b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"]


def test_connection_reads_close_framing_after_an_interim_response_byte_by_byte() -> None:
    conn, owner, _ = _connection()
    _send(conn)
    _feed_bytewise(conn, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX: y\r\n\r\nuntil close")
    assert owner.finished == []
    conn.connection_lost(None)
    assert owner.finished == [(200, b"until close", 11, None, False)]


def test_connection_counts_a_close_inside_the_final_head_as_early() -> None:
    conn, owner, _ = _connection()
    _send(conn)
    _feed_bytewise(conn, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX: y\r\n")
    conn.connection_lost(None)
    assert owner.finished == [(0, b"", 0, "closed-early", False)]


def test_connection_ends_head_responses_at_the_blank_line_and_stays_usable() -> None:
    conn, owner, _ = _connection()
    _send(conn, "HEAD")
    _feed_bytewise(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
    assert owner.finished == []
    _feed_bytewise(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    assert owner.finished == [(200, b"", 0, None, True)]
    _send(conn)
    conn.data_received(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno")
    assert owner.finished[1] == (404, b"no", 2, None, True)


def test_connection_keeps_at_most_body_limit_bytes_across_reads() -> None:
    conn, owner, _ = _connection(body_limit=7)
    _send(conn)
    conn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n")
    conn.data_received(b"5\r\nfghij\r\n0\r\n\r\n")
    assert owner.finished == [(200, b"abcdefg", 10, None, True)]


@pytest.mark.parametrize(
    ("reply", "reusable"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n", False),
    ],
)
def test_connection_reuse_follows_keep_alive_and_stray_bytes(reply: bytes, reusable: bool) -> None:
    conn, owner, transport = _connection()
    _send(conn)
    conn.data_received(reply)
    assert owner.finished == [(200, b"ok", 2, None, reusable)]
    assert transport.closed is not reusable


def test_connection_reports_a_close_before_any_byte_as_lost() -> None:
    conn, owner, _ = _connection()
    ex = _send(conn)
    conn.connection_lost(ConnectionResetError())
    assert owner.lost == [ex] and owner.finished == []


def test_connection_drops_bytes_nobody_asked_for() -> None:
    conn, owner, transport = _connection()
    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.aborted and conn.closed and owner.finished == []


def test_connection_is_an_asyncio_protocol() -> None:
    assert isinstance(_connection()[0], asyncio.Protocol)
