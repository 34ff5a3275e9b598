"""Timer pollables bucketed by millisecond: a hashed timer wheel over a heap of slot keys.

A binary heap of 100,000 ``(due, seq, handle)`` tuples costs ~17 comparisons and as many cache
misses per push and per pop — measured here at ~3 µs a pop, a third of a thinking user's step.
``TimerWheel`` keeps one list per millisecond slot (``floor(due * 1000)``) and a heap of the
slot keys only: adding a timer is a dict lookup and an append; taking the due ones takes whole
slots (sorted by due as they leave, a few dozen handles each) and splits the one slot that
straddles ``now``. With 100,000 timers spread over a second the key heap holds ~1,000 ints.

Invariants: every handle in ``slots[k]`` has ``floor(due * 1000) == k``; ``keys`` holds exactly
the keys of ``slots``; ``entries`` counts the handles in all slots; ``dead`` counts those that
left WAITING_TIMER while still in a slot (cancelled or made ready early) — they are dropped
when their slot is taken, or by ``compact()``.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from math import floor
from operator import attrgetter

from progressd.poller.pollable import READY, WAITING_TIMER, ProgressPollable

__all__ = ["TimerWheel"]

_RESOLUTION = 1000.0  # slots per second
_by_due = attrgetter("due")


class TimerWheel:
    """The poller's waiting timers. ``add`` is O(1) amortised; ``pop_due`` O(due + slots)."""

    __slots__ = ("dead", "entries", "keys", "slots")

    def __init__(self) -> None:
        self.slots: dict[int, list[ProgressPollable]] = {}
        self.keys: list[int] = []
        self.entries = 0
        self.dead = 0

    @property
    def waiting(self) -> int:
        """Live timers (not yet due-and-taken, not cancelled)."""
        return self.entries - self.dead

    def add(self, handle: ProgressPollable) -> None:
        key = floor(handle.due * _RESOLUTION)
        slot = self.slots.get(key)
        if slot is None:
            self.slots[key] = [handle]
            heappush(self.keys, key)
        else:
            slot.append(handle)
        self.entries += 1

    def pop_due(self, now: float, ready: list[list[ProgressPollable]]) -> None:
        """Move every live timer with ``due <= now`` to ``ready[rank]``, in due order."""
        keys, slots = self.keys, self.slots
        now_key = floor(now * _RESOLUTION)
        while keys and keys[0] <= now_key:
            key = heappop(keys)
            slot = slots.pop(key)
            if key == now_key:  # straddles now: keep the not-yet-due part
                later = [h for h in slot if h.due > now]
                if later:
                    slot = [h for h in slot if h.due <= now]
                    slots[key] = later
                    heappush(keys, key)
            self.entries -= len(slot)
            if len(slot) > 1:
                slot.sort(key=_by_due)
            for handle in slot:
                if handle._state != WAITING_TIMER:
                    self.dead -= 1
                    continue
                handle._state = READY
                ready[handle.rank].append(handle)
            if key == now_key:
                break

    def next_due(self) -> float | None:
        """The earliest due instant of a live timer, or ``None``; drops dead slots it meets."""
        keys, slots = self.keys, self.slots
        while keys:
            slot = slots[keys[0]]
            live = [h.due for h in slot if h._state == WAITING_TIMER]
            if live:
                return min(live)
            key = heappop(keys)
            self.entries -= len(slot)
            self.dead -= len(slot)
            del slots[key]
        return None

    def compact(self) -> None:
        """Drop dead handles everywhere when more than half of the entries are dead."""
        if self.dead <= 1024 or self.dead * 2 <= self.entries:
            return
        slots: dict[int, list[ProgressPollable]] = {}
        for key, slot in self.slots.items():
            live = [h for h in slot if h._state == WAITING_TIMER]
            if live:
                slots[key] = live
        self.slots = slots
        self.keys = list(slots)
        heapify(self.keys)
        self.entries = sum(len(slot) for slot in slots.values())
        self.dead = 0
