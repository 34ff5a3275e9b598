"""Origins and request encoding.

A request is encoded once into the exact bytes written to the socket (``EncodedRequest``), so a
step whose method, target, headers and body are not templated can encode once and send the same
bytes for every user. Encoding validates what a template could have broken: a CR or LF in a
header would split the request, a space in the target would end it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

Headers = Mapping[str, str] | Sequence[tuple[str, str]]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f-\uffff]")
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_SET_BY_CLIENT = frozenset({"content-length", "transfer-encoding"})
_COMMON_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: scheme, host and port. ``address`` is the pool key ``host:port``."""

    host: str
    port: int
    tls: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def host_header(self) -> str:
        """The ``Host`` header value: the port is left out when it is the scheme's default."""
        default = 443 if self.tls else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


class EncodedRequest:
    """The bytes of one HTTP/1.1 request, and what the client must know to read its answer:
    ``head`` (a response to HEAD has headers only, whatever its Content-Length says) and
    ``idempotent`` (safe to retry once on a fresh connection when a reused one was closed).
    Treat as read-only; a plain slots class because it is built once per request."""

    __slots__ = ("data", "head", "idempotent", "method")

    def __init__(self, data: bytes, method: str) -> None:
        self.data = data
        self.method = method
        self.head = method == "HEAD"
        self.idempotent = method in _IDEMPOTENT

    def __repr__(self) -> str:
        return f"EncodedRequest({self.data[:60]!r}, method={self.method!r})"


def parse_url(url: str) -> tuple[Origin, str]:
    """Split ``http[s]://host[:port]/path?query`` into its origin and request target.

    Raises:
        ValueError: when the URL is not an absolute http or https URL with a host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in URL {url!r}: {exc}") from None
    if not parts.hostname:
        raise ValueError(f"expected a host in URL {url!r}, like http://127.0.0.1:8080/")
    tls = parts.scheme == "https"
    origin = Origin(host=parts.hostname, port=port or (443 if tls else 80), tls=tls)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return origin, target


def encode_request(
    method: str,
    target: str,
    host: str,
    headers: Headers | None = None,
    body: bytes | None = None,
) -> EncodedRequest:
    """Encode one HTTP/1.1 request. ``Host`` is added unless given; ``Content-Length`` is set
    from ``body`` (and to 0 for an empty POST, PUT or PATCH).

    Raises:
        ValueError: on a method that is not a token, a target with spaces, control or non-ASCII
            characters, a header name that is not a token, a header value with CR, LF or NUL,
            or a Content-Length / Transfer-Encoding header (the client sets framing itself).
    """
    method = method if method in _COMMON_METHODS else _check_method(method)
    if not target or _BAD_TARGET.search(target):
        _reject_target(target)
    if not headers:
        if body:
            text = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}"
            return EncodedRequest((text + "\r\n\r\n").encode("latin-1") + body, method)
        if method in _BODY_METHODS:
            text = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n"
        else:
            text = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n"
        return EncodedRequest(text.encode("latin-1"), method)
    lines = [f"{method} {target} HTTP/1.1"]
    has_host = False
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    for name, value in pairs:
        lower = _check_header(name, value)
        has_host = has_host or lower == "host"
        lines.append(f"{name}: {value}")
    if not has_host:
        lines.append(f"Host: {host}")
    if body or method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return EncodedRequest(data=head + body if body else head, method=method)


def _check_method(method: str) -> str:
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"HTTP method must be a token like GET or POST, got {method!r}")
    return method.upper()


def _reject_target(target: str) -> NoReturn:
    raise ValueError(
        f"request target must be non-empty ASCII without spaces, got {target!r}; "
        "percent-encode spaces and non-ASCII characters"
    )


def _check_header(name: str, value: str) -> str:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"header name must be a token, got {name!r}")
    if _BAD_VALUE.search(value):
        raise ValueError(f"header {name} must not contain CR, LF or control bytes: {value!r}")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"header {name} must be Latin-1 text, got {value!r}") from None
    lower = name.lower()
    if lower in _SET_BY_CLIENT:
        raise ValueError(f"header {name} is set by the client from the body; leave it out")
    return lower
