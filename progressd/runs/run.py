"""A run: one plan executing on the running event loop, with progress, ETA and thresholds.

Design note. ``Run`` assembles the core for one plan and owns nothing else: a ``Poller`` on the
monotonic clock, the ``Runner`` (users as workbook rows), the ``EventBus`` over the workbook
(flushed as a poller iteration hook), the step executors (http through an ``HttpClient`` of
per-member pools, exec, external over a ``ReportMailbox``), the resource manager when the plan
leases members, one ``ThresholdMonitor`` and one ETA tracker per scenario. It has no CLI or
daemon concern: ``progressd run`` (``runs/command.py``) and the daemon's runs API drive the
same object::

    run = Run(load_plan("scenario.yaml"), users=100)   # inside a running loop
    run.start()
    ...  run.progress(), run.pause(), run.resume(), run.cancel(), run.deliver_reports(...)
    summary = await run.wait()                          # RunSummary, the --json / API shape

Tasks: two per run, never per user — the poll loop (``Poller.run``, restarted after a pause)
and the waiter that closes the run when the runner ends. A progress tick (a PROGRESS_CHECK
timer pollable every ``tick_s``) samples the forecasts and checks ``abort-on-fail`` thresholds.

Pause stops the poll loop: no user moves, in-flight requests finish and wait as ready handles;
resume restarts it. Paused time counts as elapsed time (a duration-bound scenario is not
extended). Once every scenario is over — iteration-bound ones finished, duration-bound ones past
``duration + graceful-stop`` — users still in an iteration are stopped and the run ends as if
they had finished (k6's graceful stop).

State: ``created`` -> ``running`` <-> ``paused`` -> ``succeeded`` | ``failed`` | ``cancelled``;
a breached threshold makes the run ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Coroutine, Iterable
from typing import Any, Literal

from progressd.clock import Clock, MonotonicClock
from progressd.dsl import Plan
from progressd.errors import StateError
from progressd.events import BatchingConfig, EventBus, Priority
from progressd.http import HttpClient
from progressd.poller import PollableKind, Poller, ProgressPollable
from progressd.reports import DeliveryCount, Report, ReportMailbox
from progressd.resources import ResourceManager
from progressd.runner import Runner, StepExecutor
from progressd.runs.figures import Figures, ScenarioFigures, run_summary
from progressd.runs.iterations import IterationTimer
from progressd.runs.leases import RunLeases
from progressd.runs.plans import with_users
from progressd.runs.progress import RunProgress
from progressd.runs.shared import SharedPools
from progressd.steps import (
    ExecStepExecutor,
    ExternalStepExecutor,
    HttpStepExecutor,
    LeaseWaits,
)
from progressd.summary import RunSummary
from progressd.workbook import Workbook
from progressd.workbook.snapshot import decode_snapshot, import_stable

__all__ = ["Run", "RunStatus"]

RunStatus = Literal["created", "running", "paused", "succeeded", "failed", "cancelled"]
_FINAL = frozenset({"succeeded", "failed", "cancelled"})


class Run:
    """One plan running on the current event loop. See the module note.

    ``users`` overrides every scenario's user count; ``restored`` (``Workbook.snapshot()``
    bytes of an earlier run of the same plan) makes users carry on from their stable points
    (crash recovery); ``http_client`` / ``mailbox`` may be
    shared or injected (the run closes a client only if it created it); ``seed`` seeds think
    times; ``tick_s`` is the progress-sampling period; ``shared_pools``: the daemon's pools,
    for scenarios leasing from a pool the plan does not declare; ``started_wall``: the Unix
    time a resumed run first started (a new run takes ``time.time()`` at ``start()``).

    Raises:
        RuntimeError: when constructed outside a running event loop.
        StateError: when the plan cannot run (a step the executors cannot prepare, a
            ``users`` override below 0), or ``restored`` is not a snapshot of its workbook.
        ResourceError: when one of the plan's pools cannot be declared.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        run_id: str | None = None,
        users: int | None = None,
        http_client: HttpClient | None = None,
        mailbox: ReportMailbox | None = None,
        seed: int | None = 0,
        tick_s: float = 0.25,
        restored: bytes | None = None,
        shared_pools: SharedPools | None = None,
        started_wall: float | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.started_wall = started_wall
        """Unix time the run (first) started; ``None`` until ``start()``."""
        self.plan = with_users(plan, users)
        self.id = run_id or uuid.uuid4().hex[:8]
        self.status: RunStatus = "created"
        self.reason: str | None = None
        # time.monotonic, not loop.time(): uvloop's counts whole milliseconds (libuv's cached
        # uv_now), which would quantise think deadlines and the wake latencies the poller
        # reports. Nothing here shares a timebase with loop.call_at: the poller sleeps with
        # call_later, and the run's leases schedule through the poller.
        self.clock: Clock = MonotonicClock()
        poller_plan = self.plan.progress.poller
        self.poller = Poller(
            self.clock,
            poller_plan.priorities,
            budget=poller_plan.budget,
            io_budget=poller_plan.io_budget,
        )
        self._own_client = http_client is None
        self.http = http_client or HttpClient(
            loop=loop, max_connections_per_member=max(1, self.plan.total_users)
        )
        self.mailbox = mailbox or ReportMailbox(loop)
        leased = any(sc.lease is not None for sc in self.plan.scenarios) and (
            bool(self.plan.pools) or shared_pools is not None
        )
        self.lease_waits = LeaseWaits(loop) if leased else None
        self.exec = ExecStepExecutor(lease_waits=self.lease_waits)
        self.external = ExternalStepExecutor(self.mailbox, loop.time, lease_waits=self.lease_waits)
        self.http_steps = HttpStepExecutor(self.http, lease_waits=self.lease_waits)
        self._leases: RunLeases | None = None
        self.runner = Runner(
            self.plan,
            self.poller,
            executors=self._executors(),
            lease_info=lambda row, lease: (
                self._leases.lease_info(row, lease) if self._leases else None
            ),
            run_id=self.id,
            seed=seed,
        )
        self.workbook = self.runner.workbook
        if self.lease_waits is not None:
            self.lease_waits.on_wait = self.runner.mark_waiting_for_resource
        self.restored = restored is not None
        if restored is not None:
            _restore_stable(self.workbook, restored)
        self.figures = Figures(self.plan, self.runner, self.clock)
        if self.restored and self.figures.tally is not None:
            self.figures.tally.seed()
        self._register_steps()
        if self.lease_waits is not None:
            self._leases = RunLeases(
                self.plan, self.runner, self.figures.first_rows, self.id, shared_pools
            )
            self._leases.on_granted = self.lease_waits.granted
            self.figures.rollbacks_by_scenario = self._leases.rollbacks
        self.bus = EventBus(self.workbook, self.clock, _batching(self.plan))
        self._iterations = self._wire_bus()
        self._tick_s = tick_s
        self._graceful_stop = False
        self._tick: ProgressPollable | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed: asyncio.Future[RunSummary] = loop.create_future()
        self._summary: RunSummary | None = None

    def _wire_bus(self) -> IterationTimer | None:
        """Flush the bus every poller iteration; subscribe what reads its field events."""
        bus = self.bus
        bus.on_wake = self.poller.notify
        self.poller.add_iteration_hook(bus.flush_due, bus.next_deadline)
        if self._leases is not None:
            self._leases.watch_finishes(bus)
        if self.figures.tally is not None:
            self.figures.tally.attach(bus)
        scenarios = self.plan.scenarios
        if not any(t.metric == "iteration_duration" for sc in scenarios for t in sc.thresholds):
            return None
        timer = IterationTimer(
            self.figures.first_rows,
            [sc.users for sc in scenarios],
            [self.figures.metrics[sc.name].iteration for sc in scenarios],
        )
        timer.attach(bus)
        return timer

    def _executors(self) -> dict[str, StepExecutor]:
        return {"http": self.http_steps, "exec": self.exec, "external": self.external}

    def _register_steps(self) -> None:
        for scenario in self.plan.scenarios:
            metrics = self.figures.metrics[scenario.name]
            for step in scenario.steps:
                if step.kind == "http":
                    self.http_steps.register(step, metrics)
                elif step.kind == "exec":
                    self.exec.register(step, metrics)
                elif step.kind == "external":
                    self.external.register(step, metrics)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start every scenario (users spread over their ramp); returns at once.

        Raises:
            StateError: when the run was already started.
        """
        if self.status != "created":
            raise StateError(f"run {self.id} is {self.status}; a run starts once")
        self.status = "running"
        if self.started_wall is None:
            self.started_wall = time.time()
        if self._leases is not None:
            self._leases.start()
        self.runner.start(restored=self.restored)
        self.figures.begin(self.runner.started_at)
        if self._iterations is not None:
            self._iterations.begin(self.runner.started_at, [s.ramp_s for s in self.plan.scenarios])
        self._schedule_tick()
        self._spawn(self._drive())
        self._spawn(self._close_when_finished())

    def deadline_timestamp(self) -> float | None:
        """Unix time of ``progress.deadline`` (start + deadline); ``None`` without one or
        before ``start()``."""
        deadline_s = self.plan.progress.deadline_s
        if deadline_s is None or self.started_wall is None:
            return None
        return self.started_wall + deadline_s

    def pause(self) -> None:
        """Stop moving users (in-flight steps still complete). No-op unless running."""
        if self.status == "running":
            self.status = "paused"
            self._resumed.clear()
            self.poller.stop()

    def resume(self) -> None:
        """Carry on after ``pause``. No-op unless paused."""
        if self.status == "paused":
            self.status = "running"
            self._resumed.set()

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop every user now; the run ends ``cancelled``. No-op once the run has ended."""
        if self.status in _FINAL or self.runner.state in ("finished", "cancelled", "failed"):
            return
        self.reason = reason
        if self.status == "created":
            self.status = "cancelled"
            self._summary = self.summary()
            self._closed.set_result(self._summary)
            return
        self.runner.cancel(reason)
        self._resumed.set()

    async def wait(self) -> RunSummary:
        """Wait until the run has ended and closed; its final summary.

        Raises:
            StateError: when the run was never started.
        """
        if self.status == "created":
            raise StateError(f"run {self.id} was not started; call start() first")
        return await asyncio.shield(self._closed)

    @property
    def finished(self) -> bool:
        return self._closed.done()

    # -- reading --------------------------------------------------------------------------

    def progress(self) -> RunProgress:
        """Where the run stands now (cheap: O(scenarios + milestones) for one-scenario runs)."""
        return self.figures.progress(self.id, self._summary_state())

    def summary(self) -> RunSummary:
        """The run's summary now (final once ``wait()`` returned)."""
        if self._summary is not None:
            return self._summary
        return run_summary(self.id, self.plan.name, self._summary_state(), self.figures)

    def scenario_figures(self) -> list[ScenarioFigures]:
        """Per-scenario figures now (users by state, done work, iterations)."""
        return [self.figures.scenario(i) for i in range(len(self.plan.scenarios))]

    @property
    def resources(self) -> ResourceManager | None:
        """The run's resource manager (its pools and leases), ``None`` when nothing is leased."""
        return None if self._leases is None else self._leases.manager

    def deliver_reports(self, reports: Iterable[Report]) -> DeliveryCount:
        """Hand external progress reports to the users waiting for them (or keep them)."""
        return self.mailbox.deliver(reports)

    # -- internals ----------------------------------------------------------------------------

    def _summary_state(self) -> Literal["running", "paused", "succeeded", "failed", "cancelled"]:
        return "running" if self.status == "created" else self.status

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drive(self) -> None:
        # the runner's state is checked before every (re)start: once it has ended, stop()
        # may already have been called, and run() would clear it
        while self._runner_running():
            await self.poller.run()
            if not self._runner_running():
                return
            await self._resumed.wait()

    def _runner_running(self) -> bool:
        return self.runner.state == "running"

    async def _close_when_finished(self) -> None:
        state = await self.runner.wait_finished()
        if self._tick is not None:
            self.poller.cancel(self._tick)
        self.bus.flush(self.clock.now(), force=True)  # subscribers see the final changes
        self.figures.end(self.poller.clock.now())
        failed = self.figures.failed_thresholds()
        if state == "cancelled" and not self._graceful_stop:
            self.status = "cancelled"
        elif state == "failed":
            self.status = "failed"
            self.reason = self.reason or self.runner.reason
        elif failed:
            self.status = "failed"
            self.reason = f"threshold failed: {failed[0]}"
        else:
            self.status = "succeeded"
        self._summary = self.summary()
        await self._shut_down()
        self._closed.set_result(self._summary)

    async def _shut_down(self) -> None:
        self.external.cancel_all()
        if self.lease_waits is not None:
            self.lease_waits.cancel_all()
        if self._leases is not None:
            await self._leases.close()
        self.bus.flush(self.clock.now(), force=True)
        self.poller.stop()
        self._resumed.set()
        await self.exec.wait_spawned()
        if self._own_client:
            with contextlib.suppress(Exception):
                await self.http.wait_closed()

    def _schedule_tick(self) -> None:
        rank = self.poller.rank_of("telemetry") if "telemetry" in self.poller.classes else None
        self._tick = self.poller.subscribe_timer(
            self.poller.now + self._tick_s, self._on_tick, None, rank, PollableKind.PROGRESS_CHECK
        )

    def _on_tick(self, handle: ProgressPollable) -> None:
        self.figures.sample()
        breached = self.figures.check_abort()
        if breached is not None and self.runner.state == "running":
            self.reason = f"threshold {breached} failed (abort-on-fail)"
            self.runner.abort(self.reason)
            return
        if self.figures.graceful_stop_over():
            self._graceful_stop = True
            self.runner.cancel("graceful-stop elapsed: unfinished iterations were interrupted")
            return
        if self.runner.state == "running":
            self._schedule_tick()


def _restore_stable(workbook: Workbook, data: bytes) -> None:
    snapshot = decode_snapshot(data)
    if snapshot.rows != workbook.rows or snapshot.milestones != workbook.milestones:
        raise StateError(
            f"the snapshot holds {snapshot.rows} users and milestones {list(snapshot.milestones)};"
            f" the plan has {workbook.rows} and {list(workbook.milestones)}"
        )
    import_stable(workbook, snapshot)


def _batching(plan: Plan) -> BatchingConfig:
    batching = plan.progress.batching
    return BatchingConfig(
        max_batch_size=batching.max_batch_size,
        flush_interval=batching.flush_interval_s,
        priority_threshold=Priority.parse(batching.priority_threshold),
    )
