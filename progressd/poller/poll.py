"""``poll(handles)``: wait on several pollables at once, with ``wasi:io/poll`` semantics.

Each call builds ONE fresh future and hangs it on the handles it waits for by wrapping their
ready callback (``_Waiters``), so the poller's hot loop pays nothing for handles nobody polls.
The future is detached when the call returns, whatever happened; nothing is reused by the next
call, so a handle that became ready between two calls is seen by the second (it is simply
``ready()`` when the call starts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from progressd.errors import StateError
from progressd.poller.pollable import CANCELLED, ProgressPollable, ReadyCallback

__all__ = ["poll", "ready_indices"]


class _Waiters:
    """Stands in for a polled handle's callback: runs the original, then wakes the pollers."""

    __slots__ = ("futures", "inner")

    def __init__(self, inner: ReadyCallback | None) -> None:
        self.inner = inner
        self.futures: list[asyncio.Future[None]] = []

    def __call__(self, handle: ProgressPollable) -> None:
        try:
            if self.inner is not None:
                self.inner(handle)
        finally:
            for future in self.futures:
                if not future.done():
                    future.set_result(None)

    def cancel(self, handle: ProgressPollable) -> None:
        for future in self.futures:
            if not future.done():
                future.set_exception(_cancelled_error(handle))


def _cancelled_error(handle: ProgressPollable) -> StateError:
    return StateError(
        f"poll: {handle!r} was cancelled while being polled; a cancelled pollable never "
        "becomes ready — drop it from the list instead"
    )


def ready_indices(handles: Sequence[ProgressPollable]) -> list[int]:
    """Indices of the handles that are ready now (``poll`` without the wait)."""
    return [i for i, handle in enumerate(handles) if handle.ready()]


async def poll(handles: Sequence[ProgressPollable]) -> list[int]:
    """Wait until at least one handle is ready; return the indices of ALL ready ones.

    Mirrors ``wasi:io/poll.poll``: the result is in ascending order and may hold several
    indices; a handle listed twice yields both indices. Handles become ready when their event
    happens and wake this call when the poller runs them, in priority order — so a running
    ``Poller.run()`` (or a test calling ``Poller.run_ready``) is what makes progress.

    Raises:
        ValueError: when ``handles`` is empty (``wasi:io/poll`` traps: an empty wait set would
            never wake).
        StateError: when a handle is cancelled, before the call or while it waits.
    """
    if not handles:
        raise ValueError(
            "poll: the list of pollables is empty; an empty wait set never wakes — pass at "
            "least one handle (e.g. a Poller.subscribe_duration timeout)"
        )
    for handle in handles:
        if handle._state == CANCELLED:
            raise _cancelled_error(handle)
    ready = ready_indices(handles)
    if ready:
        return ready
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    distinct = list({id(h): h for h in handles}.values())
    for handle in distinct:
        _attach(handle, future)
    try:
        await future
    finally:
        for handle in distinct:
            _detach(handle, future)
    return ready_indices(handles)


def _attach(handle: ProgressPollable, future: asyncio.Future[None]) -> None:
    callback = handle._callback
    if not isinstance(callback, _Waiters):
        callback = _Waiters(callback)
        handle._callback = callback
    callback.futures.append(future)


def _detach(handle: ProgressPollable, future: asyncio.Future[None]) -> None:
    callback = handle._callback
    if not isinstance(callback, _Waiters):
        return
    callback.futures.remove(future)
    if not callback.futures:
        handle._callback = callback.inner


def wake_cancelled(handle: ProgressPollable) -> None:
    """Fail the ``poll`` calls waiting on ``handle``; called by ``Poller.cancel``."""
    callback = handle._callback
    if isinstance(callback, _Waiters):
        callback.cancel(handle)
