"""Classes of HTTP failure, as reason codes.

A request that fails does not raise: its ``HttpResult.error`` carries one of these codes, so the
step that sent it can count errors by class without catching anything on the hot path.

- ``connect-refused``: nothing listens on the member's address (ECONNREFUSED).
- ``connect-timeout``: the TCP (and TLS) connect did not finish within the connect timeout.
- ``connect-error``: any other connect failure (unreachable host, name not resolved, reset).
- ``tls``: the TLS handshake or a TLS record failed (bad certificate, protocol error).
- ``timeout``: the request did not complete within its own timeout.
- ``closed-early``: the server closed the connection before the response was complete.
- ``malformed-response``: the bytes received are not a valid HTTP/1.x response.
- ``cancelled``: the pool was closed while the request was waiting or in flight.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Final, Literal, get_args

from progressd.errors import ProgressdError

HttpErrorReason = Literal[
    "connect-refused",
    "connect-timeout",
    "connect-error",
    "tls",
    "timeout",
    "closed-early",
    "malformed-response",
    "cancelled",
]

HTTP_ERROR_REASONS: Final[tuple[HttpErrorReason, ...]] = get_args(HttpErrorReason)


class PoolClosedError(ProgressdError):
    """Raised by ``HttpPool.request`` when the pool was already closed: a caller bug, since
    pools are closed only when their member leaves or the run ends."""


def classify_connect_error(exc: BaseException) -> HttpErrorReason:
    """The reason code for an exception raised while opening a connection."""
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, ConnectionRefusedError):
        return "connect-refused"
    if isinstance(exc, TimeoutError | asyncio.CancelledError):
        return "connect-timeout"
    return "connect-error"


def classify_lost_connection(exc: BaseException | None) -> HttpErrorReason:
    """The reason code when a connection is lost before its response completed."""
    if isinstance(exc, ssl.SSLError):
        return "tls"
    return "closed-early"
