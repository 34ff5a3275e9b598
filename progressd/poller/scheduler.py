"""The poller as a plain timer scheduler, for the components that only need "call me at T".

``PollerScheduler`` satisfies both timer seams in the tree: the resource manager's
``resources.seams.Scheduler`` (``call_at(when, callback, priority_class)``) and the HTTP client's
``http.scheduler.Scheduler`` (``time()`` and ``call_at(when, callback)``). Each call is one
one-shot pollable in the poller's heap — a health check due is a HEALTH handle in the ``health``
class, a lease expiry a LEASE_EXPIRY handle — so these timers share the poller's priority order
and starvation guarantee instead of sitting in the loop's own timer list.
"""

from __future__ import annotations

from collections.abc import Callable

from progressd.poller.core import Poller
from progressd.poller.pollable import PollableKind, ProgressPollable

__all__ = ["PollerScheduler"]

_KINDS = {"health": PollableKind.HEALTH, "lease": PollableKind.LEASE_EXPIRY}


class PollerScheduler:
    """Runs ``callback()`` once at or after ``when`` (the poller's clock), in a priority class.

    Unknown class names fall back to the poller's default class (``step``) rather than fail:
    the components name classes from the DSL's full list, a poller may be configured with fewer.
    """

    __slots__ = ("_poller",)

    def __init__(self, poller: Poller) -> None:
        self._poller = poller

    def time(self) -> float:
        return self._poller.clock.now()

    def call_at(
        self,
        when: float,
        callback: Callable[[], object],
        priority_class: str = "step",
        kind: str | None = None,
    ) -> ProgressPollable:
        """``kind`` is a ``PollableKind`` value (``health``, ``lease-expiry``...); by default it
        follows the class (``health`` -> HEALTH, ``lease`` -> LEASE_EXPIRY, else TIMER).

        Raises:
            ValueError: for a ``kind`` that is not a ``PollableKind`` value.
        """
        poller = self._poller
        rank = (
            poller.rank_of(priority_class)
            if priority_class in poller.classes
            else poller.default_rank
        )
        pollable_kind = (
            _KINDS.get(priority_class, PollableKind.TIMER) if kind is None else PollableKind(kind)
        )
        return poller.subscribe_timer(when, lambda _handle: callback(), None, rank, pollable_kind)
