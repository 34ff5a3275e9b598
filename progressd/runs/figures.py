"""A run's figures: per-scenario counts, progress ratios, ETA, thresholds, and the summary.

Where each figure comes from, cheapest first:

- requests, errors, checks, latencies: the scenario's ``ScenarioMetrics`` (the executors bump
  them per request, O(1));
- users by state, done work, milestones, rollbacks, rework: the workbook's incremental totals
  (O(statuses + milestones)) — for a run of one scenario. A run of several scenarios shares one
  workbook, whose totals are run-wide, so per-scenario users, done work and iterations come from
  a ``ScenarioTally`` fed by the event bus (``tally.py``, O(changed rows) per batch);
  per-scenario rollbacks from the lease binding (``leases.py``), rework is not split;
- progress: done work over the scenario's total work (``iterations``), or elapsed time over the
  duration (``duration``: exact); a scenario whose users have all ended is at 1.0;
- ETA: the scenario's tracker (``progress.py``); the run's ETA is the latest scenario's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from progressd.clock import Clock
from progressd.dsl import Plan
from progressd.forecast import combine_eta
from progressd.runner import Runner
from progressd.runs.progress import RunProgress, ScenarioProgress, ScenarioTracker
from progressd.runs.source import ScenarioSource, threshold_of
from progressd.runs.tally import ScenarioTally
from progressd.steps import ScenarioMetrics
from progressd.summary import RunState, RunSummary, ScenarioSummary
from progressd.thresholds import ThresholdMonitor
from progressd.workbook import Status

__all__ = ["Figures", "ScenarioFigures", "run_summary"]

_ACTIVE = (Status.ACTIVE, Status.THINKING, Status.WAITING, Status.WAITING_FOR_RESOURCE)
_ENDED = (Status.DONE, Status.FAILED, Status.CANCELLED)


@dataclass(slots=True)
class ScenarioFigures:
    """One scenario's user and work counts at one instant."""

    users: int
    active: int
    finished: int
    done: int
    iterations: int
    rework: int
    rollbacks: int
    milestones: dict[str, int] = field(default_factory=dict)
    waiting_for_resource: int = 0
    """Of the ``active`` users, those whose step waits for a lease."""


class Figures:
    """Counts, forecasts and thresholds of one run's scenarios. See the module note."""

    def __init__(self, plan: Plan, runner: Runner, clock: Clock) -> None:
        self.plan = plan
        self.runner = runner
        self.clock = clock
        scenarios = plan.scenarios
        self.metrics = {sc.name: ScenarioMetrics(name=sc.name) for sc in scenarios}
        first = runner.workbook.rows - plan.total_users
        self.first_rows: list[int] = []
        for sc in scenarios:
            self.first_rows.append(first)
            first += sc.users
        self.rollbacks_by_scenario: list[int] | None = None
        self.tally = (
            ScenarioTally(runner.workbook, self.first_rows, [sc.users for sc in scenarios])
            if len(scenarios) > 1
            else None
        )
        """Per-scenario counts for runs of several scenarios (attach it to the run's bus)."""
        self.trackers = [
            ScenarioTracker(clock, sc.duration_s if sc.iterations is None else None)
            for sc in scenarios
        ]
        self.sources = [
            ScenarioSource(
                self.metrics[sc.name], elapsed=self.elapsed_s, counters=partial(self._counters, i)
            )
            for i, sc in enumerate(scenarios)
        ]
        self.monitors = [
            ThresholdMonitor([threshold_of(t) for t in sc.thresholds], clock) for sc in scenarios
        ]
        self.started_at: float | None = None
        self.ended_at: float | None = None

    # -- time -------------------------------------------------------------------------------

    def begin(self, now: float) -> None:
        self.started_at = now
        for tracker in self.trackers:
            tracker.begin(now)
        self.monitors = [
            ThresholdMonitor(m.thresholds, self.clock, started_at=now) for m in self.monitors
        ]

    def end(self, now: float) -> None:
        self.ended_at = now

    def elapsed_s(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.clock.now() if self.ended_at is None else self.ended_at
        return max(0.0, end - self.started_at)

    # -- counts -----------------------------------------------------------------------------

    def scenario(self, index: int) -> ScenarioFigures:
        """The counts of scenario ``index`` now."""
        if len(self.plan.scenarios) == 1:
            return self._whole_run()
        return self._tallied(index)

    def _whole_run(self) -> ScenarioFigures:
        totals = self.runner.workbook.totals()
        counts = totals.status_counts
        names = self.runner.workbook.milestones
        return ScenarioFigures(
            users=totals.rows,
            active=sum(counts[s] for s in _ACTIVE),
            finished=sum(counts[s] for s in _ENDED),
            done=totals.done_work,
            iterations=self.runner.statistics().iterations,
            rework=totals.rework,
            rollbacks=totals.rollbacks,
            milestones=dict(zip(names, totals.milestone_reached, strict=True)),
            waiting_for_resource=counts[Status.WAITING_FOR_RESOURCE],
        )

    def _tallied(self, index: int) -> ScenarioFigures:
        wb = self.runner.workbook
        sc = self.plan.scenarios[index]
        tally = self.tally
        assert tally is not None  # made in __init__ for runs of several scenarios
        counts = tally.statuses[index]
        prefix = f"{sc.name}/"
        reached = wb.totals().milestone_reached
        milestones = {
            name.removeprefix(prefix): reached[i]
            for i, name in enumerate(wb.milestones)
            if name.startswith(prefix)
        }
        rollbacks = 0 if self.rollbacks_by_scenario is None else self.rollbacks_by_scenario[index]
        return ScenarioFigures(
            users=sc.users,
            active=sum(counts[s] for s in _ACTIVE),
            finished=sum(counts[s] for s in _ENDED),
            done=tally.done[index],
            iterations=tally.iterations[index],
            rework=0,
            rollbacks=rollbacks,
            milestones=milestones,
            waiting_for_resource=counts[Status.WAITING_FOR_RESOURCE],
        )

    def _counters(self, index: int) -> tuple[int, int]:
        figures = self.scenario(index)
        return figures.iterations, figures.rollbacks

    def ratio(self, index: int, figures: ScenarioFigures) -> float:
        """Scenario ``index``'s progress, 0..1."""
        sc = self.plan.scenarios[index]
        if figures.finished >= figures.users:
            return 1.0 if self.started_at is not None else 0.0
        if sc.work_total:
            return min(1.0, figures.done / sc.work_total)
        if sc.duration_s:
            return min(1.0, self.elapsed_s() / sc.duration_s)
        return 0.0

    def eta(self, index: int, figures: ScenarioFigures) -> float | None:
        ended = figures.finished >= figures.users or self.ended_at is not None
        stats = self.trackers[index].statistics(finished=ended)
        if stats is None:
            return None
        return None if stats.eta_s is None else max(0.0, stats.eta_s)

    def graceful_stop_over(self) -> bool:
        """Whether every scenario is over: iteration-bound ones finished, duration-bound ones
        past ``duration + graceful-stop`` (counts are read only once the earliest is due)."""
        timed = [sc.duration_s + sc.graceful_stop_s for sc in self.plan.scenarios if sc.duration_s]
        if not timed or self.elapsed_s() < min(timed):
            return False
        elapsed = self.elapsed_s()
        for index, sc in enumerate(self.plan.scenarios):
            if sc.duration_s and elapsed >= sc.duration_s + sc.graceful_stop_s:
                continue
            figures = self.scenario(index)
            if figures.finished < figures.users:
                return False
        return True

    # -- sampling and thresholds ---------------------------------------------------------------

    def sample(self) -> None:
        """Feed every scenario's tracker (the progress tick)."""
        for index, sc in enumerate(self.plan.scenarios):
            f = self.scenario(index)
            requests = self.metrics[sc.name].requests
            total = sc.work_total
            self.trackers[index].sample(
                done=f.done, work=f.done + f.rework, total=total, requests=requests
            )

    def _label(self, index: int, label: str) -> str:
        return (
            label if len(self.plan.scenarios) == 1 else f"{self.plan.scenarios[index].name}/{label}"
        )

    def check_abort(self) -> str | None:
        """The label of the first breached ``abort-on-fail`` threshold, else ``None``."""
        for index, monitor in enumerate(self.monitors):
            result = monitor.check_abort(self.sources[index])
            if result is not None:
                return self._label(index, result.label)
        return None

    def thresholds(self, index: int) -> dict[str, bool]:
        return self.monitors[index].passed(self.sources[index])

    def failed_thresholds(self) -> list[str]:
        return [
            self._label(index, label)
            for index in range(len(self.monitors))
            for label, passed in self.thresholds(index).items()
            if not passed
        ]

    # -- records ----------------------------------------------------------------------------

    def progress(self, run_id: str, state: RunState) -> RunProgress:
        """The live record of the run."""
        parts: list[ScenarioProgress] = []
        for index, sc in enumerate(self.plan.scenarios):
            f = self.scenario(index)
            m = self.metrics[sc.name]
            parts.append(ScenarioProgress(
                name=sc.name, users=f.users, active=f.active, finished=f.finished,
                progress=self.ratio(index, f), iterations=f.iterations, requests=m.requests,
                errors=m.errors, req_per_s=self.trackers[index].req_per_s,
                eta_s=self.eta(index, f), milestones=f.milestones,
                waiting_for_resource=f.waiting_for_resource,
            ))  # fmt: skip
        return RunProgress(
            run=run_id,
            name=self.plan.name,
            state=state,
            elapsed_s=self.elapsed_s(),
            users=sum(p.users for p in parts),
            active=sum(p.active for p in parts),
            finished=sum(p.finished for p in parts),
            waiting_for_resource=sum(p.waiting_for_resource for p in parts),
            progress=self._overall(parts),
            requests=sum(p.requests for p in parts),
            errors=sum(p.errors for p in parts),
            rollbacks=self.runner.workbook.totals().rollbacks,
            req_per_s=sum(p.req_per_s for p in parts),
            eta_s=self._run_eta(),
            scenarios=tuple(parts),
        )

    def _overall(self, parts: list[ScenarioProgress]) -> float:
        users = sum(p.users for p in parts)
        if not users:
            return 1.0 if self.ended_at is not None else 0.0
        return min(1.0, sum(p.progress * p.users for p in parts) / users)

    def _run_eta(self) -> float | None:
        if self.ended_at is not None:
            return 0.0
        stats = [t.statistics(finished=False) for t in self.trackers]
        known = [s for s in stats if s is not None]
        if len(known) != len(stats):
            return None
        eta = combine_eta(known)
        return None if eta is None else max(0.0, eta)


def run_summary(run_id: str, name: str, state: RunState, figures: Figures) -> RunSummary:
    """The ``RunSummary`` of a run now (``--json``, ``GET /v1/runs/{run}``)."""
    scenarios: dict[str, ScenarioSummary] = {}
    thresholds: dict[str, bool] = {}
    milestones: dict[str, int] = {}
    multi = len(figures.plan.scenarios) > 1
    elapsed = round(figures.elapsed_s(), 3)
    for index, sc in enumerate(figures.plan.scenarios):
        f = figures.scenario(index)
        m = figures.metrics[sc.name]
        own = figures.thresholds(index)
        thresholds.update({figures._label(index, k): v for k, v in own.items()})
        milestones.update({(f"{sc.name}/{k}" if multi else k): v for k, v in f.milestones.items()})
        scenarios[sc.name] = ScenarioSummary(
            duration_s=elapsed, users=f.users, progress=figures.ratio(index, f),
            requests=m.requests, errors=m.errors, rollbacks=f.rollbacks, milestones=f.milestones,
            thresholds=own, eta_s=figures.eta(index, f),
        )  # fmt: skip
    progress = figures.progress(run_id, state)
    return RunSummary(
        run=run_id,
        name=name,
        state=state,
        duration_s=elapsed,
        users=progress.users,
        progress=progress.progress,
        requests=progress.requests,
        errors=progress.errors,
        rollbacks=progress.rollbacks,
        milestones=milestones,
        thresholds=thresholds,
        scenarios=scenarios,
        eta_s=progress.eta_s,
    )
