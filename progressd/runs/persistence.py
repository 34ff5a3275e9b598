"""The bridge between the daemon's runs and the store: history, snapshots, crash recovery.

Design note. ``RunPersistence`` records, for every run the ``RunManager`` holds:

- the run itself at submission (scenario source, status ``running``) plus one ``state`` event
  whose detail says how to rebuild it (``users`` override, source file name);
- the bus's milestone, rollback, error and lease events as counts, one ``Counter`` per bus
  batch (``record_event_counts``: the store aggregates them per flush), never a row per user;
- a progress sample per scenario every ``state.sample-interval``;
- the stable snapshot (``Workbook.snapshot()``) when stable points changed and one is due;
- the final status, finish time and summary when the run ends.

Durability invariant: a milestone is written to the history only together with (in the same
store buffer, hence the same transaction as) a snapshot that holds it. Milestone counts wait in
``RunRecorder.held`` until the next snapshot, so after a ``kill -9`` the restored stable points
cover every milestone the history shows. A snapshot is due when milestones or rollbacks
happened since the last one and either ``state.snapshot-interval`` has passed, or the previous
encode took under ``SNAPSHOT_BUDGET_S`` and ``state.flush-interval`` has passed: small runs
snapshot every flush (a crash loses at most a flush interval), large ones (the encode of 100k
rows holds the loop ~80 ms) at most every snapshot interval.

Shutdown: runs the daemon stops are snapshotted first and stay ``running`` in the store, so the
next start resumes them; ``[recovery] on-start = "interrupt"`` marks them ``interrupted``
instead. Recovery (``recover()``) runs as a startup hook, after the store opened and before the
control socket serves.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from progressd.dsl import load_plan_text
from progressd.errors import ProgressdError, StoreError
from progressd.events import Batch
from progressd.logs import get_logger
from progressd.runs.snapshots import encode_stable_chunked
from progressd.store import EventTuple, Store

if TYPE_CHECKING:
    from progressd.config import Config
    from progressd.runs.manager import RunEntry, RunManager
    from progressd.runs.run import Run
    from progressd.summary import RunSummary

__all__ = ["SNAPSHOT_BUDGET_S", "RunPersistence", "RunRecorder", "SubmittedDetail"]

log = get_logger("progressd.runs")

SNAPSHOT_BUDGET_S = 0.005
_TOPICS = ("milestone", "rollback", "error", "lease")


@dataclass(slots=True)
class SubmittedDetail:
    """What a resumed run needs besides its source: kept as the ``submitted`` state event."""

    users: int | None = None
    file: str = "<submitted>"

    def encode(self) -> dict[str, Any]:
        return {"users": self.users, "file": self.file}

    @classmethod
    def decode(cls, detail: Any) -> SubmittedDetail:
        if not isinstance(detail, dict):
            return cls()
        users = detail.get("users")
        return cls(users=users if isinstance(users, int) else None, file=str(detail.get("file")))


@dataclass(slots=True, eq=False)
class RunRecorder:
    """One live run's history on its way to the store (a bus subscriber)."""

    run: Run
    store: Store
    scenarios: tuple[str, ...]
    first_rows: list[int]
    held: Counter[EventTuple] = field(default_factory=Counter)
    rollbacks: Counter[tuple[str, str]] = field(default_factory=Counter)
    stable_changed: bool = True
    last_snapshot: float = 0.0
    last_sample: float = 0.0
    snapshot_seconds: float = 0.0
    snapshots: int = 0
    snapshotting: bool = False
    member_states: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def attach(cls, run: Run, store: Store) -> RunRecorder:
        names = tuple(sc.name for sc in run.plan.scenarios)
        recorder = cls(run, store, names, list(run.figures.first_rows))
        run.bus.subscribe(_TOPICS, recorder.on_batch)
        return recorder

    def on_batch(self, batch: Batch) -> None:
        """Count the batch's events by key; O(events), one store call per batch."""
        counts: Counter[EventTuple] = Counter()
        milestones = self.run.workbook.milestones
        for event in batch.events:
            scenario = self._scenario_of(event.row)
            if event.topic == "milestone":
                self.held[("milestone", scenario, milestones[event.milestone], "")] += 1
                self.stable_changed = True
            elif event.topic == "rollback":
                reason = event.reason or ""
                counts[("rollback", scenario, "", reason)] += 1
                self.rollbacks[(scenario, reason)] += 1
                self.stable_changed = True
            else:
                counts[(event.topic, scenario, "", "")] += 1
        if counts:
            self.store.record_event_counts(self.run.id, counts)
        self._log_rollbacks(counts)

    def _log_rollbacks(self, counts: Counter[EventTuple]) -> None:
        for (kind, scenario, _, reason), users in counts.items():
            if kind == "rollback":
                log.info(
                    "users rolled back",
                    run=self.run.id,
                    scenario=scenario,
                    reason=reason,
                    users=users,
                )

    def _scenario_of(self, row: int) -> str:
        if len(self.scenarios) == 1:
            return self.scenarios[0]
        return self.scenarios[bisect.bisect_right(self.first_rows, row) - 1]

    def watch_members(self) -> None:
        """Log and record each pool member state change once (O(members), per tick)."""
        manager = self.run.resources
        if manager is None:
            return
        for pool in manager.pool_records():
            for member in pool.members:
                key = (pool.name, member.address)
                before = self.member_states.get(key)
                self.member_states[key] = member.state
                if before is None or before == member.state:
                    continue
                change = {"pool": pool.name, "member": member.address, "from": before}
                change["to"] = member.state
                self.store.record_event(self.run.id, "state", reason="member", detail=change)
                log.info(
                    "pool member state changed",
                    run=self.run.id,
                    scenario=self.run.plan.name,
                    **change,
                )

    def sample(self, now: float) -> None:
        """One progress sample per scenario (O(scenarios))."""
        self.last_sample = now
        progress = self.run.progress()
        for part in progress.scenarios:
            self.store.record_sample(
                self.run.id,
                part.name,
                done=_done(self.run, part.name),
                total=_total(self.run, part.name),
                rate=part.req_per_s,
                users_active=part.active,
                users_done=part.finished,
            )

    def snapshot_due(self, now: float, flush_s: float, interval_s: float) -> bool:
        if not self.stable_changed or self.snapshotting:
            return False
        since = now - self.last_snapshot
        cheap = self.snapshot_seconds <= SNAPSHOT_BUDGET_S
        return since >= interval_s or (cheap and since >= flush_s)

    def snapshot(self, now: float) -> None:
        """Encode the stable state at once (one stall: shutdown) and hand it, with the held
        milestones, to the store."""
        held, self.held = self.held, Counter()
        began = time.perf_counter()
        version = self.run.workbook.statistics().version
        data = self.run.workbook.snapshot()
        self.snapshot_seconds = time.perf_counter() - began
        self._record(now, data, version, held)

    async def snapshot_chunked(self, now: float) -> None:
        """Like ``snapshot`` but compressed a chunk per loop turn (``snapshots.py``). The
        milestones held so far are in the export, which happens before the first yield."""
        held, self.held = self.held, Counter()
        self.stable_changed = False
        self.snapshotting = True
        try:
            result = await encode_stable_chunked(self.run.workbook)
        except BaseException:
            self.held.update(held)  # cancelled: they wait for the next snapshot
            self.stable_changed = True
            raise
        finally:
            self.snapshotting = False
        self.snapshot_seconds = result.stall_s
        self._record(now, result.data, result.version, held)

    def _record(self, now: float, data: bytes, version: int, held: Counter[EventTuple]) -> None:
        self.store.record_snapshot(self.run.id, data, version=version)
        if held:
            self.store.record_event_counts(self.run.id, held)
        self.stable_changed = bool(self.held)
        self.last_snapshot = now
        self.snapshots += 1


class RunPersistence:
    """Keeps every run of ``manager`` in ``store`` and resumes interrupted ones (module note)."""

    def __init__(self, manager: RunManager, store: Store, config: Config) -> None:
        self.manager = manager
        self.store = store
        self.config = config
        self.recorders: dict[str, RunRecorder] = {}
        self.resumed = 0
        self.interrupted = 0
        self._tasks: set[asyncio.Task[None]] = set()
        manager.on_started.append(self.started)
        manager.on_closed.append(self.closed)

    # -- manager hooks -------------------------------------------------------------------------

    def started(self, entry: RunEntry) -> None:
        """A run was submitted or resumed: store it (new ones) and record its history."""
        run = entry.run
        assert run is not None
        if not entry.resumed:
            self.store.add_run(run.id, name=run.plan.name, source=entry.source, status="running")
            detail = SubmittedDetail(users=entry.users, file=entry.file).encode()
            self.store.record_event(run.id, "state", reason="submitted", detail=detail)
            self.store.update_run(run.id, started_at=run.started_wall)
        else:
            self.store.record_event(run.id, "state", reason="resumed")
        self.recorders[run.id] = RunRecorder.attach(run, self.store)
        if not entry.resumed:
            self.flush()  # durable before the submitter hears of it (one small transaction)

    def closed(self, entry: RunEntry, summary: RunSummary, stopped_by_daemon: bool) -> None:
        """A run ended. Runs the daemon stopped keep ``running`` (they resume at next start)."""
        recorder = self.recorders.pop(entry.id, None)
        if stopped_by_daemon:
            if recorder is not None and recorder.held:
                self.store.record_event_counts(entry.id, recorder.held)
            log.info("run left for recovery at next start", run=entry.id, scenario=_names(entry))
            return
        if recorder is not None and recorder.held:
            self.store.record_event_counts(entry.id, recorder.held)
        self.store.update_run(
            entry.id, status=summary.state, finished_at=time.time(), summary=summary
        )

    # -- periodic work -------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Samples and snapshots that are due (called every flush interval)."""
        state = self.config.state
        for recorder in list(self.recorders.values()):
            if recorder.run.finished:
                continue
            recorder.watch_members()
            if now - recorder.last_sample >= state.sample_interval:
                recorder.sample(now)
            if recorder.snapshot_due(now, state.flush_interval, state.snapshot_interval):
                self._spawn(recorder.snapshot_chunked(now))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_snapshots(self) -> None:
        """Wait for the chunked snapshots in progress (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def snapshot_all(self) -> int:
        """Snapshot every live run now, in one go (graceful shutdown); how many. Chunked
        snapshots in progress are cancelled (their held milestones go with these)."""
        for task in self._tasks:
            task.cancel()
        now = time.monotonic()
        live = [r for r in self.recorders.values() if not r.run.finished]
        for recorder in live:
            recorder.stable_changed = True
            recorder.snapshot(now)
        return len(live)

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.state.flush_interval)
            self.tick(time.monotonic())

    # -- recovery ------------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Resume (or mark ``interrupted``) the runs the store says were running; their ids.

        A run that cannot be rebuilt (its scenario no longer loads, a corrupt snapshot) is
        marked ``interrupted`` with the reason logged; nothing stored is deleted.
        """
        handled: list[str] = []
        for record in self.store.running_runs():
            if self.config.recovery.on_start == "interrupt":
                self._interrupt(record.id, record.name, "recovery.on-start is interrupt")
            else:
                self._resume(record.id)
            handled.append(record.id)
        return handled

    def _resume(self, run_id: str) -> None:
        stored = self.store.get_run(run_id)
        assert stored is not None and stored.source is not None
        detail = SubmittedDetail()
        for event in self.store.events(run_id, kind="state"):
            if event.reason == "submitted":
                detail = SubmittedDetail.decode(event.detail)
        snapshot = self.store.latest_snapshot(run_id)
        try:
            plan = load_plan_text(
                stored.source,
                file=detail.file,
                cache=None,
                shared_pools=self.manager.shared_pool_names,
            )
            self.manager.submit(
                plan,
                users=detail.users,
                run_id=run_id,
                restored=None if snapshot is None else snapshot.data,
                started_wall=stored.started_at,
                source=stored.source,
                file=detail.file,
            )
        except ProgressdError as exc:
            self._interrupt(run_id, stored.name, f"cannot resume: {exc}")
            return
        self.resumed += 1
        log.info(
            "run resumed",
            run=run_id,
            scenario=stored.name,
            snapshot_version=None if snapshot is None else snapshot.version,
        )

    def _interrupt(self, run_id: str, scenario: str, reason: str) -> None:
        self.store.update_run(run_id, status="interrupted", finished_at=time.time())
        self.store.record_event(run_id, "state", reason="interrupted", detail={"why": reason})
        self.interrupted += 1
        log.warning("run interrupted", run=run_id, scenario=scenario, reason=reason)

    def flush(self) -> None:
        """Commit what is buffered now (failures are logged; rows stay buffered)."""
        try:
            self.store.flush()
        except StoreError as exc:
            log.error("store flush failed; will retry", error=str(exc))


def _names(entry: RunEntry) -> str:
    return "" if entry.final is None else entry.final[0].name or ""


def _scenario_index(run: Run, name: str) -> int:
    return next(i for i, sc in enumerate(run.plan.scenarios) if sc.name == name)


def _done(run: Run, name: str) -> int:
    return run.figures.scenario(_scenario_index(run, name)).done


def _total(run: Run, name: str) -> int:
    return int(run.plan.scenarios[_scenario_index(run, name)].work_total or 0)
