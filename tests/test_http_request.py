from __future__ import annotations

import pytest

from progressd.http import Origin, encode_request, parse_address, parse_url


def test_encode_request_adds_host_and_content_length() -> None:
    req = encode_request("post", "/login?x=1", "127.0.0.1:8080", {"X-Id": "7"}, b'{"a":1}')
    assert req.data == (
        b"POST /login?x=1 HTTP/1.1\r\nX-Id: 7\r\nHost: 127.0.0.1:8080\r\n"
        b'Content-Length: 7\r\n\r\n{"a":1}'
    )
    assert (req.method, req.head, req.idempotent) == ("POST", False, False)


def test_encode_request_keeps_a_given_host_and_sends_empty_post_length() -> None:
    req = encode_request("POST", "/", "ignored", [("host", "example.test")])
    assert req.data == b"POST / HTTP/1.1\r\nhost: example.test\r\nContent-Length: 0\r\n\r\n"
    get = encode_request("HEAD", "/", "h")
    assert get.data == b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" and get.head and get.idempotent


@pytest.mark.parametrize(
    ("method", "target", "headers", "match"),
    [
        ("GE T", "/", None, "method must be a token"),
        ("GET", "/a b", None, "without spaces"),
        ("GET", "/caf\u00e9", None, "percent-encode"),
        ("GET", "", None, "non-empty"),
        ("GET", "/", {"X-A": "1\r\nEvil: yes"}, "must not contain CR, LF"),
        ("GET", "/", {"Bad Name": "1"}, "header name must be a token"),
        ("GET", "/", {"X-A": "\u20ac"}, "Latin-1"),
        ("GET", "/", {"Content-Length": "3"}, "set by the client"),
        ("GET", "/", {"Transfer-Encoding": "chunked"}, "set by the client"),
    ],
)
def test_encode_request_rejects_what_would_break_the_request(
    method: str, target: str, headers: dict[str, str] | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        encode_request(method, target, "h", headers)


def test_parse_url_splits_origin_and_target() -> None:
    assert parse_url("http://127.0.0.1:18081/buy?id=3") == (
        Origin("127.0.0.1", 18081),
        "/buy?id=3",
    )
    origin, target = parse_url("https://example.test")
    assert (origin, target, origin.host_header) == (
        Origin("example.test", 443, tls=True),
        "/",
        "example.test",
    )
    assert parse_url("http://[::1]:8080/")[0].host_header == "[::1]:8080"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://h/", "http:// or https://"),
        ("http:///x", "expected a host"),
        ("http://h:99999/", "bad port"),
    ],
)
def test_parse_url_rejects_bad_urls(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_url(url)


def test_parse_address_reads_member_addresses() -> None:
    assert parse_address("127.0.0.1:18081") == Origin("127.0.0.1", 18081)
    assert parse_address("[::1]:80", tls=True) == Origin("::1", 80, tls=True)
    for bad in ("127.0.0.1", ":80", "h:0", "h:x"):
        with pytest.raises(ValueError, match="member address"):
            parse_address(bad)
