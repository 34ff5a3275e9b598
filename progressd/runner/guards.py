"""``when:`` guards: evaluated when a step is reached, re-checked only when their fields change.

A guard that holds lets the step run. A guard that does not hold either *skips* the step or
*waits*, by what it reads:

- it reads only fields the user's own steps determine (``vars``, ``user``, ``progress``,
  ``scenario``): nothing can change while the user waits, so waiting would never end — the step
  is skipped (Ansible's ``when:``), and counted in ``steps_skipped``;
- it reads a field something else changes (``lease.*``: the resource manager; ``run.*``: the
  clock) — the user holds a CONDITION pollable, and the guard is re-evaluated only when one of
  those fields is marked dirty for that row (``touch``) or, for ``run.*``, on the runner's
  periodic progress check. No guard is ever evaluated in a polling loop over users.
"""

from __future__ import annotations

from collections.abc import Callable

from progressd.dsl import CompiledCondition, Context
from progressd.poller import PollableKind, Poller, ProgressPollable

__all__ = ["WAITABLE_ROOTS", "GuardWaits", "roots_of", "waitable"]

WAITABLE_ROOTS = frozenset({"lease", "run"})
"""Roots whose fields change while a user waits (so a false guard on them waits)."""


def roots_of(condition: CompiledCondition) -> frozenset[str]:
    """The context roots a condition reads (``vars.token`` -> ``vars``)."""
    return frozenset(name.partition(".")[0] for name in condition.fields)


def waitable(condition: CompiledCondition) -> bool:
    """Whether a false ``condition`` should wait (rather than skip its step)."""
    return bool(roots_of(condition) & WAITABLE_ROOTS)


class _Wait:
    __slots__ = ("condition", "handle", "roots")

    def __init__(self, condition: CompiledCondition, handle: ProgressPollable) -> None:
        self.condition = condition
        self.handle = handle
        self.roots = roots_of(condition)


class GuardWaits:
    """The rows waiting on a guard; at most one per row.

    ``context_of(row)`` builds the evaluation context; a guard that holds on re-check has its
    handle made ready on ``poller``. While some guard reads ``run.*``, one PROGRESS_CHECK timer
    (class ``rank``) re-checks those guards every ``interval`` seconds.
    """

    __slots__ = (
        "_by_row",
        "_context_of",
        "_poller",
        "_rank",
        "_recheck",
        "_run_rows",
        "interval",
        "rechecks",
    )

    def __init__(
        self, context_of: Callable[[int], Context], poller: Poller, rank: int, interval: float
    ) -> None:
        self._context_of = context_of
        self._poller = poller
        self._rank = rank
        self.interval = interval
        self._by_row: dict[int, _Wait] = {}
        self._run_rows: dict[int, _Wait] = {}
        self._recheck: ProgressPollable | None = None
        self.rechecks = 0

    def __len__(self) -> int:
        return len(self._by_row)

    @property
    def run_waiters(self) -> int:
        """Rows whose guard reads ``run.*`` (re-checked by the periodic progress check)."""
        return len(self._run_rows)

    def add(self, row: int, condition: CompiledCondition, handle: ProgressPollable) -> None:
        wait = _Wait(condition, handle)
        self._by_row[row] = wait
        if "run" in wait.roots:
            self._run_rows[row] = wait
            self._ensure_recheck()

    def close(self) -> None:
        """Stop the periodic re-check (the run ended)."""
        if self._recheck is not None:
            self._poller.cancel(self._recheck)

    def discard(self, row: int) -> None:
        self._by_row.pop(row, None)
        self._run_rows.pop(row, None)

    def touch(self, row: int, field: str) -> bool:
        """``field`` (``lease``, ``lease.address``, ``vars.token``...) changed for ``row``:
        re-check its guard if it reads that root. Returns whether the guard now holds."""
        wait = self._by_row.get(row)
        if wait is None or field.partition(".")[0] not in wait.roots:
            return False
        return self._evaluate(row, wait)

    def touch_run(self) -> int:
        """``run.*`` changed (time passed): re-check every guard reading it; return how many
        now hold."""
        released = 0
        for row, wait in list(self._run_rows.items()):
            released += self._evaluate(row, wait)
        return released

    def _evaluate(self, row: int, wait: _Wait) -> bool:
        self.rechecks += 1
        if not wait.condition.evaluate(self._context_of(row)):
            return False
        self.discard(row)
        self._poller.make_ready(wait.handle)
        return True

    def _ensure_recheck(self) -> None:
        if self._recheck is None or not self._recheck.pending:
            self._recheck = self._poller.subscribe_timer(
                self._poller.now + self.interval,
                self._on_recheck,
                None,
                self._rank,
                PollableKind.PROGRESS_CHECK,
            )

    def _on_recheck(self, handle: ProgressPollable) -> None:
        self.touch_run()
        if self._run_rows:
            self._ensure_recheck()
