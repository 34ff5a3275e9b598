"""What a finished HTTP request reports to its ``on_done`` callback."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from progressd.http.errors import HttpErrorReason


class HttpResult(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The outcome of one request.

    ``status`` is 0 when no response arrived. ``latency_s`` runs from ``request()`` to the end
    of the response (or the failure), so it includes waiting for a pooled connection and
    connecting. ``body`` holds at most the pool's ``body_limit`` bytes; ``body_size`` counts
    every body byte received. ``error`` is ``None`` on success (whatever the status) or the
    class of failure.
    """

    status: int
    latency_s: float
    body: bytes = b""
    body_size: int = 0
    error: HttpErrorReason | None = None

    @property
    def ok(self) -> bool:
        """True when a complete response arrived (any status)."""
        return self.error is None


OnDone = Callable[[HttpResult], None]
