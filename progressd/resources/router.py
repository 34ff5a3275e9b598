"""``RunRouter``: one ``ProgressBinding`` for a manager whose pools are shared by several runs.

Pools declared in the daemon config serve every run, but each run numbers its users from 0 in
its own workbook. The router gives each attached run a key range (``base + row``, ranges
``2**32`` apart), so the shared manager sees unique row keys, and routes every binding call
back to the run that owns the key, with the run's own row numbers. A rollback or abort that
spans several runs is split into one call per run.

Invariants: a key's run slot is ``key >> 32``; slots are never reused while the router lives,
so a late call for a detached run is dropped instead of reaching a newer run.
"""

from __future__ import annotations

from collections.abc import Sequence

from progressd.errors import ResourceError
from progressd.resources.seams import ProgressBinding

_SHIFT = 32
_MASK = (1 << _SHIFT) - 1


class RunRouter:
    """Routes a shared manager's binding calls to each run's own binding."""

    __slots__ = ("_next", "_runs")

    def __init__(self) -> None:
        self._runs: dict[int, ProgressBinding] = {}
        self._next = 1

    def attach(self, binding: ProgressBinding) -> int:
        """Register a run's binding; returns its key base (use ``base + row`` as row key)."""
        slot = self._next
        self._next += 1
        self._runs[slot] = binding
        return slot << _SHIFT

    def detach(self, base: int) -> None:
        """Forget a finished run; later calls for its keys are dropped."""
        self._runs.pop(base >> _SHIFT, None)

    def lease_changed(self, row: int, lease_id: int | None) -> None:
        binding = self._runs.get(row >> _SHIFT)
        if binding is not None:
            binding.lease_changed(row & _MASK, lease_id)

    def rollback_users(self, rows: Sequence[int], reason: str) -> None:
        for binding, local in self._split(rows):
            binding.rollback_users(local, reason)

    def abort(self, rows: Sequence[int], reason: str) -> None:
        """Abort each run holding one of ``rows`` (a shared member fails only its holders)."""
        for binding, local in self._split(rows):
            binding.abort(local, reason)

    def holder_progress(self, row: int) -> tuple[float, str | None]:
        """The holder's progress, from its run.

        Raises:
            ResourceError: when the key belongs to no attached run.
        """
        binding = self._runs.get(row >> _SHIFT)
        if binding is None:
            raise ResourceError(f"row key {row} belongs to no attached run")
        return binding.holder_progress(row & _MASK)

    def _split(self, rows: Sequence[int]) -> list[tuple[ProgressBinding, list[int]]]:
        groups: dict[int, list[int]] = {}
        for row in rows:
            groups.setdefault(row >> _SHIFT, []).append(row & _MASK)
        return [(self._runs[slot], local) for slot, local in groups.items() if slot in self._runs]
