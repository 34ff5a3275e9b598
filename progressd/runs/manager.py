"""The daemon's runs: submitted plans running side by side on the one loop.

Design note. ``RunManager`` holds every run the daemon knows, in submission order, each with
its ``RunJournal`` (the event lines streams replay) and one closer task that records the end.
Several runs share the loop; each has its own poller, runner and (when it leases) resource
manager, so pools are run-scoped and ``pools()`` / ``leases()`` gather them from the live runs,
after the daemon config's pools (``shared_pools``, one manager for all runs, see ``shared.py``).

Finished runs stay readable (``show``, ``events``) until more than ``keep_finished`` (default
100) have finished; then the oldest finished one is forgotten. Live runs are never evicted. A
closed run keeps only its summary, last progress record and journal (the ``Run`` with its
workbook is dropped): its journal (at most 1,000 lines) and two records, whatever its users.

``cancel_all()`` (the daemon calls it as shutdown begins, so event streams end with the
cancelled summary before the socket stops) and ``shutdown(deadline)`` (waits for the runs to
close within ``deadline`` seconds) return the ids cancelled; the daemon logs them.

Hooks: ``on_started`` callbacks get each entry once its run has started (submitted or resumed
after a restart), ``on_closed`` callbacks get it with its final summary and whether the daemon's
shutdown stopped it; ``runs/persistence.py`` uses them to keep the store's history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from progressd.dsl import Plan
from progressd.errors import ResourceError, StateError
from progressd.logs import get_logger
from progressd.reports import DeliveryCount, Report
from progressd.resources import LeaseRecord, MemberRecord, PoolRecord, ResourceManager
from progressd.runs.journal import DEFAULT_MAX_LINES, RunJournal
from progressd.runs.messages import RunLease
from progressd.runs.progress import RunProgress
from progressd.runs.run import Run
from progressd.runs.shared import SharedPools
from progressd.summary import RunSummary

__all__ = ["DEFAULT_KEEP_FINISHED", "RunEnded", "RunEntry", "RunManager", "UnknownRun"]

log = get_logger("progressd.runs")

DEFAULT_KEEP_FINISHED = 100


class UnknownRun(StateError):
    """Raised when a run id names no run the daemon holds (never submitted, or forgotten)."""


class RunEnded(StateError):
    """Raised when a request would steer a run that has already ended."""


@dataclass(slots=True, eq=False)
class RunEntry:
    """One run the daemon holds and its journal.

    Once the run has closed, only its final figures are kept: ``run`` is dropped (and with it
    the workbook, poller and executors), so a retained finished run costs its summary, its last
    progress record and its journal. Invariants: exactly one of ``run`` and ``final`` is set.
    """

    id: str
    journal: RunJournal
    run: Run | None
    closer: asyncio.Task[None] | None = None
    final: tuple[RunSummary, RunProgress] | None = None
    source: str = ""
    file: str = "<submitted>"
    users: int | None = None
    resumed: bool = False

    @property
    def finished(self) -> bool:
        """The run has ended (its summary is final), even if not yet closed here."""
        return self.run is None or self.run.finished

    def summary(self) -> RunSummary:
        if self.final is not None:
            return self.final[0]
        assert self.run is not None
        return self.run.summary()

    def progress(self) -> RunProgress:
        if self.final is not None:
            return self.final[1]
        assert self.run is not None
        return self.run.progress()

    def close(self, summary: RunSummary) -> None:
        """Keep the final figures and drop the run."""
        assert self.run is not None
        self.final = (summary, self.run.progress())
        self.journal.close(summary, self.run.reason)
        self.run = None


class RunManager:
    """Submits, finds, steers and forgets runs (see the module note)."""

    def __init__(
        self,
        *,
        keep_finished: int = DEFAULT_KEEP_FINISHED,
        tick_s: float = 0.25,
        journal_lines: int = DEFAULT_MAX_LINES,
        entries: dict[str, Any] | None = None,
    ) -> None:
        """``journal_lines`` bounds each run's retained event lines; ``entries`` is the dict
        to hold runs in (the daemon's ``runs``, so its status and metrics count them), a fresh
        one by default.

        Raises:
            ValueError: ``keep_finished`` is negative.
        """
        if keep_finished < 0:
            raise ValueError(f"keep_finished must be >= 0, got {keep_finished}")
        self.keep_finished = keep_finished
        self.tick_s = tick_s
        self.journal_lines = journal_lines
        self._entries: dict[str, RunEntry] = {} if entries is None else entries
        self._cancelled: set[str] = set()
        self.on_started: list[Callable[[RunEntry], None]] = []
        self.on_closed: list[Callable[[RunEntry, RunSummary, bool], None]] = []
        self.shared_pools: SharedPools | None = None
        """The daemon config's pools (``[pools.NAME]``), shared by every run; set at start."""

    @property
    def shared_pool_names(self) -> frozenset[str]:
        """Pools a submitted scenario may lease from without declaring them."""
        return frozenset() if self.shared_pools is None else self.shared_pools.names

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[RunEntry]:
        return iter(list(self._entries.values()))

    # -- runs -------------------------------------------------------------------------------

    def submit(
        self,
        plan: Plan,
        *,
        users: int | None = None,
        source: str = "",
        file: str = "<submitted>",
        run_id: str | None = None,
        restored: bytes | None = None,
        started_wall: float | None = None,
    ) -> Run:
        """Start ``plan`` now (on the running loop) and hold it. ``source`` / ``file``: the
        scenario text and its name, kept for the history. ``run_id`` with ``restored`` (or
        ``None`` for a run that reached no stable point) resumes a stored run after a restart;
        ``started_wall``: its first start (Unix time), which its deadline counts from.

        Raises:
            StateError: the plan cannot run (``users`` negative, a step that cannot be
                prepared, ``restored`` does not match the plan).
            ResourceError: a pool of the plan is invalid.
        """
        shared = self.shared_pools
        run = Run(
            plan, users=users, tick_s=self.tick_s, run_id=run_id, restored=restored,
            shared_pools=shared, started_wall=started_wall,
        )  # fmt: skip
        while run_id is None and run.id in self._entries:
            run = Run(plan, users=users, tick_s=self.tick_s, shared_pools=shared)
        journal = RunJournal(run, max_lines=self.journal_lines)
        entry = RunEntry(
            id=run.id,
            run=run,
            journal=journal,
            source=source,
            file=file,
            users=users,
            resumed=run_id is not None,
        )
        self._entries[run.id] = entry
        run.start()
        entry.journal.record_state("running", "resumed" if entry.resumed else "submitted")
        entry.closer = asyncio.get_running_loop().create_task(
            self._close_when_finished(entry), name=f"run-{run.id}-closer"
        )
        for hook in self.on_started:
            hook(entry)
        what = "run resumed from the store" if entry.resumed else "run submitted"
        log.info(what, run=run.id, scenario=plan.name, users=run.plan.total_users)
        return run

    def entry(self, run_id: str) -> RunEntry:
        """The run ``run_id`` and its journal.

        Raises:
            UnknownRun: no such run (never submitted, or forgotten after it finished).
        """
        entry = self._entries.get(run_id)
        if entry is None:
            known = ", ".join(list(self._entries)[-5:]) or "none"
            raise UnknownRun(f"no run {run_id!r} (recent runs: {known})")
        return entry

    def pause(self, run_id: str) -> Run:
        """Pause a live run (no-op when already paused).

        Raises:
            UnknownRun: no such run.
            RunEnded: the run has ended.
        """
        entry, run = self._live(run_id, "pause")
        if run.status == "running":
            run.pause()
            entry.journal.record_state("paused")
        return run

    def resume(self, run_id: str) -> Run:
        """Resume a paused run (no-op when running).

        Raises:
            UnknownRun: no such run.
            RunEnded: the run has ended.
        """
        entry, run = self._live(run_id, "resume")
        if run.status == "paused":
            run.resume()
            entry.journal.record_state("running", "resumed")
        return run

    def cancel(self, run_id: str, reason: str = "cancelled through the control API") -> Run:
        """Ask a live run to stop; it ends ``cancelled`` once its users have stopped.

        Raises:
            UnknownRun: no such run.
            RunEnded: the run has ended.
        """
        _, run = self._live(run_id, "cancel")
        run.cancel(reason)
        return run

    def rollback(self, run_id: str, user: int | None = None) -> int:
        """Roll ``user`` (a row) or every unfinished user back to its last stable point
        (reason ``manual``); the number of users rolled back.

        Raises:
            UnknownRun: no such run.
            RunEnded: the run has ended.
            StateError: ``user`` is not one of its users.
        """
        _, run = self._live(run_id, "roll back")
        total = run.plan.total_users
        if user is not None and not 0 <= user < total:
            raise StateError(f"run {run_id} has users 0..{total - 1}; there is no user {user}")
        before = run.runner.statistics().rollbacks
        run.runner.rollback_users(range(total) if user is None else (user,), "manual")
        rolled = run.runner.statistics().rollbacks - before
        log.info("manual rollback", run=run_id, scenario=run.plan.name, user=user, users=rolled)
        return rolled

    # -- resources ---------------------------------------------------------------------------

    def pools(self) -> list[PoolRecord]:
        """The daemon's shared pools (``run`` is ``None``), then the pools of every live run."""
        shared = [] if self.shared_pools is None else self.shared_pools.pool_records()
        return shared + [r for _, manager in self._managers() for r in manager.pool_records()]

    def leases(self, run_id: str | None = None) -> list[RunLease]:
        """The leases held in the live runs (of ``run_id`` only, when given).

        Raises:
            UnknownRun: ``run_id`` names no run.
        """
        if run_id is not None:
            self.entry(run_id)
        shared = [] if self.shared_pools is None else self.shared_pools.lease_records()
        own = [(owner, r) for owner, m in self._managers() for r in m.lease_records()]
        return [
            RunLease(run=owner, **_fields(record))
            for owner, record in [*shared, *own]
            if run_id is None or owner == run_id
        ]

    def drain(
        self, pool: str, member: str, *, run_id: str | None = None, draining: bool = True
    ) -> tuple[str | None, MemberRecord]:
        """Stop (or resume) granting leases on ``member`` of ``pool``; the run (``None`` for a
        pool of the daemon config, used when no live run declares one of that name) and the
        member.

        Raises:
            UnknownRun: ``run_id`` names no run.
            ResourceError: no live run has that pool, several do (give ``run_id``), or the
                member is unknown.
        """
        owners = [(owner, m) for owner, m in self._managers() if pool in m.pools]
        shared = self.shared_pools
        if run_id is None and not owners and shared is not None and pool in shared.names:
            record = shared.manager.drain(pool, member, draining)
            what = "member drained" if draining else "member undrained"
            log.info(what, pool=pool, member=member)
            return None, record
        if run_id is not None:
            self.entry(run_id)
            owners = [(owner, m) for owner, m in owners if owner == run_id]
        if not owners:
            raise ResourceError(f"no live run has a pool {pool!r} (see `progressctl pools`)")
        if len(owners) > 1:
            runs = ", ".join(owner for owner, _ in owners)
            raise ResourceError(f"pool {pool!r} exists in runs {runs}; name one with ?run=")
        owner, manager = owners[0]
        record = manager.drain(pool, member, draining)
        entry = self._entries[owner]
        scenario = entry.run.plan.name if entry.run is not None else ""
        what = "member drained" if draining else "member undrained"
        log.info(what, run=owner, scenario=scenario, pool=pool, member=member)
        return owner, record

    # -- shutdown ----------------------------------------------------------------------------

    def cancel_all(self) -> list[str]:
        """Ask every live run to stop (the daemon is shutting down); their ids. Their event
        streams end as each run closes."""
        live = [e.run for e in self._entries.values() if e.run is not None and not e.run.finished]
        for run in live:
            run.cancel("the daemon is shutting down")
        self._cancelled.update(run.id for run in live)
        return [run.id for run in live]

    async def shutdown(self, deadline: float) -> list[str]:
        """Cancel every live run and wait (at most ``deadline`` s) until they have closed;
        the ids of the runs cancelled here or by an earlier ``cancel_all``."""
        self.cancel_all()
        waits = [
            e.closer for e in self._entries.values() if e.closer is not None and not e.closer.done()
        ]
        if waits:
            await asyncio.wait(waits, timeout=deadline)
        return sorted(self._cancelled)

    # -- internals ---------------------------------------------------------------------------

    def deliver_reports(self, run_id: str, reports: Iterable[Report]) -> DeliveryCount:
        """Hand external progress reports to a live run.

        Raises:
            UnknownRun: no such run.
            RunEnded: the run has ended (its steps take no more reports).
        """
        _, run = self._live(run_id, "report to")
        return run.deliver_reports(reports)

    def _live(self, run_id: str, verb: str) -> tuple[RunEntry, Run]:
        entry = self.entry(run_id)
        if entry.run is None or entry.run.finished:
            state = entry.summary().state
            raise RunEnded(f"cannot {verb} run {run_id}: it has ended ({state})")
        return entry, entry.run

    def _managers(self) -> list[tuple[str, ResourceManager]]:
        return [
            (entry.id, entry.run.resources)
            for entry in self._entries.values()
            if entry.run is not None and not entry.run.finished and entry.run.resources is not None
        ]

    async def _close_when_finished(self, entry: RunEntry) -> None:
        assert entry.run is not None
        run = entry.run
        summary = await run.wait()
        entry.close(summary)
        stopped = entry.id in self._cancelled
        for hook in self.on_closed:
            try:
                hook(entry, summary, stopped)
            except Exception:
                log.exception("run close hook failed", run=entry.id, scenario=run.plan.name)
        log.info(
            "run ended",
            run=entry.id,
            scenario=run.plan.name,
            state=summary.state,
            reason=run.reason,
        )
        self._forget_old()

    def _forget_old(self) -> None:
        finished = [run_id for run_id, e in self._entries.items() if e.final is not None]
        for run_id in finished[: max(0, len(finished) - self.keep_finished)]:
            del self._entries[run_id]


def _fields(record: LeaseRecord) -> dict[str, Any]:
    return msgspec.structs.asdict(record)
