"""The one-shot readiness handle the poller queues.

A ``ProgressPollable`` goes through these states exactly once, left to right:

    WAITING_TIMER ─┐
                   ├─> READY ─> FIRED
    WAITING_EVENT ─┘      (any waiting or ready state) ─> CANCELLED

``WAITING_TIMER`` handles sit in the poller's timer wheel until their ``due`` instant;
``WAITING_EVENT`` handles wait for ``Poller.make_ready`` (a step completed, a condition's fields
became dirty and it now holds, a report arrived). A ``READY`` handle sits in its priority class's
ready queue; running it (calling its callback, waking ``poll`` waiters) makes it ``FIRED``: spent
for good. Waiting again means subscribing a new handle — a handle is never re-armed, so no
future or queue entry is ever reused (the stale-future pitfall of ``wasi:io/poll`` hosts). The
one exception is private: a *slot* (``subscribe_timer(..., rearmable=True)``, a handle nobody
but its subscriber and its callback ever sees) goes from FIRED back to READY when its callback
returns ``AGAIN``, for a zero think (see ``Poller.subscribe_timer``).

Invariants:
- ``_state`` only moves forward along the arrows above.
- A handle is in at most one ready queue, at most once; the timer wheel may hold a dead entry
  for a handle that left ``WAITING_TIMER`` early (cancelled or made ready): entries are checked
  and dropped lazily, so ``cancel`` is O(1).

The class is deliberately thin (``__slots__``, no per-handle future, no per-handle lock): the
poller creates one per virtual-user step, so its construction cost is the hot path.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from progressd.poller.core import Poller

__all__ = [
    "CANCELLED",
    "FIRED",
    "READY",
    "WAITING_EVENT",
    "WAITING_TIMER",
    "PollableKind",
    "ProgressPollable",
    "ReadyCallback",
]

WAITING_TIMER = 0
WAITING_EVENT = 1
READY = 2
FIRED = 3
CANCELLED = 4

_STATE_NAMES = ("waiting-timer", "waiting-event", "ready", "fired", "cancelled")


class PollableKind(enum.Enum):
    """What a pollable waits for (the ``pollable-kind`` enum of ``wit/types.wit``)."""

    TIMER = "timer"
    COMPLETION = "completion"
    CONDITION = "condition"
    HEALTH = "health"
    LEASE_EXPIRY = "lease-expiry"
    REPORT = "report"
    PROGRESS_CHECK = "progress-check"


ReadyCallback = Callable[["ProgressPollable"], object]
"""Called once, by the poller, when the handle runs. Receives the handle (read ``owner``,
``kind``, ``value``). It may subscribe new handles and cancel others; it must not block."""


class ProgressPollable:
    """A one-shot readiness handle: a timer, a step completion, a condition, a health check
    due, a lease expiry, an external report or a progress check.

    Create handles through ``Poller.subscribe_timer`` / ``Poller.subscribe``, never directly.
    The public attributes are read-only by contract:

    - ``kind``: a ``PollableKind``.
    - ``owner``: whatever the subscriber passed (a workbook row index, an object, ``None``).
    - ``rank``: the dense priority rank of its class (0 runs first), see ``Poller.rank_of``.
    - ``due``: for timers the instant it is due; for events the instant it became ready
      (``inf`` while it waits). Wake latency is measured from ``due`` to the run.
    """

    __slots__ = ("_callback", "_poller", "_state", "_value", "due", "kind", "owner", "rank")

    _value: object  # set only by make_ready: one slot store fewer per handle on the hot path

    def __init__(  # noqa: PLR0917 - positional on purpose: the hot path creates one per step
        self,
        poller: Poller,
        kind: PollableKind,
        owner: Any,
        rank: int,
        callback: ReadyCallback | None,
        due: float,
        state: int,
    ) -> None:
        self._poller = poller
        self.kind = kind
        self.owner = owner
        self.rank = rank
        self._callback = callback
        self.due = due
        self._state = state

    def ready(self) -> bool:
        """Whether the event happened. Never blocks; stays ``True`` once it is.

        A timer is ready as soon as the poller's clock reaches ``due``, even before the
        poller has run it. A cancelled handle is never ready.
        """
        state = self._state
        if state in (READY, FIRED):
            return True
        if state == WAITING_TIMER:
            return self.due <= self._poller.clock.now()
        return False

    @property
    def fired(self) -> bool:
        """Whether the poller has run it (called its callback): the handle is spent."""
        return self._state == FIRED

    @property
    def cancelled(self) -> bool:
        return self._state == CANCELLED

    @property
    def pending(self) -> bool:
        """Whether it still waits for its event or for its turn to run."""
        return self._state < FIRED

    @property
    def state(self) -> str:
        """The state's name: waiting-timer, waiting-event, ready, fired or cancelled."""
        return _STATE_NAMES[self._state]

    @property
    def value(self) -> object:
        """What ``Poller.make_ready`` was given (a step's outcome, a report); else ``None``."""
        return getattr(self, "_value", None)

    @property
    def poller(self) -> Poller:
        return self._poller

    def cancel(self) -> None:
        """Withdraw the handle in O(1) (a no-op once fired); see ``Poller.cancel``."""
        self._poller.cancel(self)

    async def wait_ready(self) -> None:
        """Wait until ``ready()`` (``block`` in the WIT): at once when it already is, else
        until the poller runs it.

        Raises:
            StateError: when the handle is cancelled, before or while waiting.
        """
        from progressd.poller.poll import poll

        await poll([self])

    def __repr__(self) -> str:
        return (
            f"<ProgressPollable {self.kind.value} owner={self.owner!r} rank={self.rank} "
            f"due={self.due:.6f} {self.state}>"
        )
