"""parse2wbs: a decoded ``Document`` -> the immutable ``Plan`` (see ``wbs.py``).

The builder checks what the schema cannot: durations, templates and conditions (compiled
here, once), references between sections (a lease's pool, ``release-on`` milestones,
threshold steps, ``vars`` read by expressions), duplicate names, and "exactly one of" rules.
It normalises milestone weights and computes the work totals. Errors are ``SpecError`` at a
document path; the loader adds the file position.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

import msgspec

from progressd.dsl.diagnostics import suggest
from progressd.dsl.pools import build_pool
from progressd.dsl.positions import Path, SpecError
from progressd.dsl.schema import Document, Lease, Progress, Sampling, Scenario
from progressd.dsl.schema import Poller as PollerSpec
from progressd.dsl.steps import StepsBuilder
from progressd.dsl.thresholds import build_thresholds
from progressd.dsl.values import duration_at, optional_duration_at
from progressd.dsl.wbs import (
    BatchingPlan,
    LeasePlan,
    MilestoneSpec,
    Plan,
    PollerPlan,
    PoolPlan,
    ProgressPlan,
    SamplingPlan,
    ScenarioPlan,
    StepPlan,
)

DEFAULT_PRIORITIES: dict[str, int] = {
    "health": 0,
    "lease": 1,
    "milestone": 2,
    "external": 3,
    "condition": 4,
    "step": 5,
    "timer": 6,
    "telemetry": 7,
}
"""Pollable classes and their default priority (0 runs first)."""

DEFAULT_IO_BUDGET = 256
"""``progress.poller.io-budget`` when not given (capped at the budget): the poller's default."""


def build_plan(
    doc: Document, *, source_hash: str, version: int, shared_pools: Collection[str] = ()
) -> Plan:
    """The plan for a decoded document. A lease may name a pool the document declares or,
    in the daemon, one of ``shared_pools`` (declared in the daemon config); a declared pool
    hides a shared one of the same name.

    Raises:
        SpecError: on the first semantic error, at its document path.
    """
    pools = _pools(doc)
    names = {pool.name for pool in pools} | set(shared_pools)
    scenarios: list[ScenarioPlan] = []
    seen: dict[str, int] = {}
    for index, scenario in enumerate(doc.load.scenarios):
        path: Path = ("load", "scenarios", index)
        if scenario.name in seen:
            raise SpecError((*path, "name"), f'duplicate scenario name "{scenario.name}" '
                            f"(already load.scenarios[{seen[scenario.name]}])")  # fmt: skip
        seen[scenario.name] = index
        scenarios.append(_scenario(scenario, path, names, set(doc.vars)))
    if not scenarios:
        raise SpecError(("load", "scenarios"), "a document needs at least one scenario")
    return Plan(
        name=doc.name,
        source_hash=source_hash,
        version=version,
        description=doc.description,
        vars=dict(doc.vars),
        progress=_progress(doc.progress, ("progress",)),
        pools=tuple(pools),
        scenarios=tuple(scenarios),
        timeline=doc.timeline,
        registers=doc.registers,
    )


def _pools(doc: Document) -> list[PoolPlan]:
    base: Path = ("resources", "ip-port-pool")
    return [
        build_pool(name, pool, (*base, name)) for name, pool in doc.resources.ip_port_pool.items()
    ]


def _poller(poller: PollerSpec, priorities: dict[str, int], path: Path) -> PollerPlan:
    budget, io_budget = poller.budget, poller.io_budget
    if io_budget is None:
        io_budget = min(budget, DEFAULT_IO_BUDGET)
    elif io_budget > budget:
        raise SpecError((*path, "io-budget"),
                        f"io-budget {io_budget} is above budget {budget}: a batch of "
                        "completions is at most a whole iteration; lower io-budget or raise "
                        "budget")  # fmt: skip
    return PollerPlan(priorities=priorities, budget=budget, io_budget=io_budget)


def _progress(progress: Progress, path: Path) -> ProgressPlan:
    batching = progress.batching
    flush = duration_at(batching.flush_interval, (*path, "batching", "flush-interval"))
    priorities = dict(DEFAULT_PRIORITIES)
    for name, value in progress.poller.priorities.items():
        if name not in DEFAULT_PRIORITIES:
            raise SpecError((*path, "poller", "priorities", name),
                            f'unknown pollable class "{name}"' + suggest(name, DEFAULT_PRIORITIES),
                            at_key=True)  # fmt: skip
        priorities[name] = value
    return ProgressPlan(
        batching=BatchingPlan(
            max_batch_size=batching.max_batch_size,
            flush_interval_s=flush,
            priority_threshold=batching.priority_threshold,
        ),
        poller=_poller(progress.poller, priorities, (*path, "poller")),
        sampling=_sampling(progress.sampling, (*path, "sampling")),
        deadline_s=_deadline(progress.deadline, (*path, "deadline")),
    )


def _deadline(value: str | int | float | None, path: Path) -> float | None:
    deadline = optional_duration_at(value, path)
    if deadline is not None and deadline <= 0:
        raise SpecError(path, f"a deadline is longer than 0s, got {value!r}")
    return deadline


def _sampling(sampling: str | Sampling, path: Path) -> SamplingPlan:
    if isinstance(sampling, str):
        sampling = Sampling(mode=sampling)  # type: ignore[arg-type]  # schema Literal
    rate, window = sampling.rate, optional_duration_at(sampling.window, (*path, "window"))
    if sampling.mode == "sampled":
        rate = 0.1 if rate is None else rate
        if not 0 < rate <= 1:
            raise SpecError(
                (*path, "rate"), f"a sampling rate is above 0 and at most 1, got {rate}"
            )
    elif rate is not None:
        raise SpecError((*path, "rate"), f'"rate" applies to mode: sampled, not {sampling.mode}')
    if sampling.mode == "aggregated":
        window = 1.0 if window is None else window
        if window <= 0:
            raise SpecError((*path, "window"), "an aggregation window is longer than 0s")
    elif window is not None:
        raise SpecError(
            (*path, "window"), f'"window" applies to mode: aggregated, not {sampling.mode}'
        )
    return SamplingPlan(mode=sampling.mode, rate=rate, window_s=window)


def _scenario(scenario: Scenario, path: Path, pools: set[str], doc_vars: set[str]) -> ScenarioPlan:
    builder = StepsBuilder(path=(*path, "steps"))
    steps = _normalise_weights(builder.build(scenario.steps))
    _check_unique_names(steps, (*path, "steps"))
    _check_vars(builder, doc_vars)
    milestones = tuple(s.spec.name for s in steps if isinstance(s.spec, MilestoneSpec))
    iterations, duration = _bounds(scenario, path)
    work_steps = sum(1 for step in steps if not step.is_milestone)
    work_per_user = None if iterations is None else work_steps * iterations
    return ScenarioPlan(
        name=scenario.name,
        users=scenario.users,
        ramp_s=duration_at(scenario.ramp, (*path, "ramp")),
        iterations=iterations,
        duration_s=duration,
        graceful_stop_s=duration_at(scenario.graceful_stop, (*path, "graceful-stop")),
        priority=scenario.priority,
        business_value=_business_value(scenario, path),
        lease=_lease(scenario.resource_lease, (*path, "resource_lease"), pools, milestones),
        thresholds=build_thresholds(
            scenario.thresholds, [s.name for s in steps], (*path, "thresholds")
        ),
        steps=tuple(steps),
        milestones=milestones,
        work_steps=work_steps,
        work_per_user=work_per_user,
        work_total=None if work_per_user is None else work_per_user * scenario.users,
    )


def _bounds(scenario: Scenario, path: Path) -> tuple[int | None, float | None]:
    if scenario.iterations is not None and scenario.duration is not None:
        raise SpecError((*path, "duration"), 'give either "iterations" or "duration", not both',
                        at_key=True)  # fmt: skip
    if scenario.duration is None:
        return scenario.iterations or 1, None
    seconds = duration_at(scenario.duration, (*path, "duration"))
    if seconds <= 0:
        raise SpecError((*path, "duration"), "a scenario duration is longer than 0s")
    return None, seconds


def _business_value(scenario: Scenario, path: Path) -> float:
    if scenario.business_value < 0:
        raise SpecError((*path, "business-value"), "business-value cannot be negative")
    return scenario.business_value


def _lease(
    lease: Lease | None, path: Path, pools: set[str], milestones: tuple[str, ...]
) -> LeasePlan | None:
    if lease is None:
        return None
    if lease.pool not in pools:
        known = (
            f"; known pools: {', '.join(sorted(pools))}"
            if pools
            else (
                "; define it under resources.ip-port-pool, or (runs submitted to the daemon)"
                " under [pools.NAME] in the daemon config"
            )
        )
        hint = suggest(lease.pool, pools) if pools else ""
        raise SpecError((*path, "pool"), f'unknown pool "{lease.pool}"' + (hint or known))
    release, milestone = _release_on(lease.release_on, (*path, "release-on"), milestones)
    return LeasePlan(
        pool=lease.pool,
        per=lease.per,
        ttl_s=optional_duration_at(lease.ttl, (*path, "ttl")),
        release_on=release,
        release_milestone=milestone,
    )


def _release_on(
    text: str, path: Path, milestones: tuple[str, ...]
) -> tuple[Literal["end", "milestone"], str | None]:
    if text == "end":
        return "end", None
    kind, _, name = text.partition(":")
    if kind != "milestone" or not name:
        raise SpecError(path, f'expected "end" or "milestone:NAME", got "{text}"')
    if name not in milestones:
        listed = ", ".join(milestones) or "none"
        hint = suggest(name, milestones) if milestones else ""
        raise SpecError(path, f'unknown milestone "{name}"{hint or f"; milestones: {listed}"}')
    return "milestone", name


def _normalise_weights(steps: list[StepPlan]) -> list[StepPlan]:
    total = sum(step.milestone_weight for step in steps if step.is_milestone)
    if not total:
        return steps
    out: list[StepPlan] = []
    for step in steps:
        if step.is_milestone and isinstance(step.spec, MilestoneSpec):
            weight = step.milestone_weight / total
            spec = MilestoneSpec(name=step.spec.name, weight=weight)
            out.append(msgspec.structs.replace(step, spec=spec, milestone_weight=weight))
        else:
            out.append(step)
    return out


def _check_unique_names(steps: list[StepPlan], path: Path) -> None:
    seen: dict[str, int] = {}
    milestones: dict[str, int] = {}
    for step in steps:
        if isinstance(step.spec, MilestoneSpec):
            name = step.spec.name
            if name in milestones:
                raise SpecError((*path, step.index, "milestone"), f'duplicate milestone "{name}" '
                                f"(already steps[{milestones[name]}])")  # fmt: skip
            milestones[name] = step.index
        if step.name in seen:
            raise SpecError((*path, step.index), f'duplicate step name "{step.name}" '
                            f"(already steps[{seen[step.name]}])")  # fmt: skip
        seen[step.name] = step.index


def _check_vars(builder: StepsBuilder, doc_vars: set[str]) -> None:
    known = doc_vars | builder.extracted
    for path, fields in builder.reads:
        for name in fields:
            root, _, rest = name.partition(".")
            var = rest.split(".")[0]
            if root == "vars" and var and var not in known:
                hint = suggest(var, known) if known else ""
                raise SpecError(path, f'"vars.{var}" is never set: declare it under "vars" or '
                                f'"extract" it in a step{hint}')  # fmt: skip


__all__ = ["DEFAULT_PRIORITIES", "build_plan"]
