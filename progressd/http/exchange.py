"""One request on its way through a pool: waiting, connecting, in flight, done.

Invariants: an exchange is reported to its ``on_done`` exactly once, when its state becomes
``DONE``; the deadlines, a connection and a connect attempt that still refer to a ``DONE`` exchange
ignore it. Waiting exchanges are removed from the pool's queue lazily (skipped when popped).
Reporting replaces ``on_done`` with ``reported``: a finished exchange still queued in the
deadline FIFO (until it reaches the front or the FIFO is compacted) keeps none of its caller's
objects alive, so they are freed at once by reference counting, not promoted through the
garbage collector's generations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from progressd.http.request import EncodedRequest
from progressd.http.result import HttpResult, OnDone

if TYPE_CHECKING:
    from progressd.http.connection import HttpConnection

WAITING: Final = 0
CONNECTING: Final = 1
ACTIVE: Final = 2
DONE: Final = 3


@dataclass(slots=True, eq=False)
class Exchange:
    """A request and its bookkeeping; owned by the pool that received it."""

    request: EncodedRequest
    on_done: OnDone
    started: float
    state: int = WAITING
    connection: HttpConnection | None = None
    reused: bool = False
    retried: bool = False


def reported(result: HttpResult) -> None:
    """The ``on_done`` of an exchange already reported (see the module note)."""
