"""A scenario prepared for running: the plan's steps flattened into per-index tuples.

The runner's hot path indexes these tuples by step pointer instead of matching on step specs,
so moving a user on costs a few tuple lookups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from progressd.dsl import CompiledCondition, MilestoneSpec, Plan, ScenarioPlan, ThinkSpec
from progressd.errors import StateError
from progressd.runner.guards import waitable
from progressd.workbook import Workbook

__all__ = ["IO", "MILESTONE", "THINK", "PreparedScenario", "prepare_run"]

THINK = 0
MILESTONE = 1
IO = 2


@dataclass(slots=True)
class PreparedScenario:
    """``plan`` plus everything the hot path reads per step, and its row range."""

    index: int
    plan: ScenarioPlan
    first_row: int
    kinds: tuple[int, ...]
    guards: tuple[CompiledCondition | None, ...]
    guard_waits: tuple[bool, ...]
    """Per step: whether a false guard waits (True) or skips the step (False)."""
    think: tuple[tuple[float, float], ...]
    milestones: tuple[int, ...]
    """Workbook milestone index per step (-1 for non-milestone steps)."""
    fixed_think: tuple[float, ...]
    """Per step: the think time of an unguarded fixed think (the hot path), else -1."""
    work_total: int | None
    iterations: int | None
    duration_s: float | None

    @property
    def users(self) -> int:
        return self.plan.users

    @property
    def step_count(self) -> int:
        return len(self.kinds)


def milestone_key(plan: ScenarioPlan, name: str, qualified: bool) -> str:
    """The workbook's milestone name: ``name``, or ``scenario/name`` when a run holds several
    scenarios (their milestone names may repeat)."""
    return f"{plan.name}/{name}" if qualified else name


def prepare(
    index: int, plan: ScenarioPlan, first_row: int, milestone_index: dict[str, int], qualified: bool
) -> PreparedScenario:
    kinds: list[int] = []
    think: list[tuple[float, float]] = []
    milestones: list[int] = []
    for step in plan.steps:
        spec = step.spec
        if isinstance(spec, ThinkSpec):
            kinds.append(THINK)
            think.append((spec.min_s, spec.max_s))
        else:
            kinds.append(MILESTONE if isinstance(spec, MilestoneSpec) else IO)
            think.append((0.0, 0.0))
        if isinstance(spec, MilestoneSpec):
            milestones.append(milestone_index[milestone_key(plan, spec.name, qualified)])
        else:
            milestones.append(-1)
    guards = tuple(None if s.when is None else s.when.compiled() for s in plan.steps)
    return PreparedScenario(
        index=index,
        plan=plan,
        first_row=first_row,
        kinds=tuple(kinds),
        guards=guards,
        guard_waits=tuple(g is not None and waitable(g) for g in guards),
        think=tuple(think),
        milestones=tuple(milestones),
        fixed_think=tuple(
            lo if kind == THINK and lo == hi and guard is None else -1.0
            for kind, (lo, hi), guard in zip(kinds, think, guards, strict=True)
        ),
        work_total=plan.work_per_user,
        iterations=plan.iterations,
        duration_s=plan.duration_s,
    )


def prepare_run(
    plan: Plan, workbook: Workbook | None, executors: Mapping[str, object]
) -> tuple[Workbook, tuple[PreparedScenario, ...]]:
    """The run's workbook (created when ``None``) and its prepared scenarios, rows assigned
    after the workbook's existing ones (``add_rows`` is the caller's).

    Raises:
        StateError: when a step kind has no executor, or ``workbook`` lacks a milestone.
    """
    qualified = len(plan.scenarios) > 1
    names = [milestone_key(s, m, qualified) for s in plan.scenarios for m in s.milestones]
    if workbook is None:
        workbook = Workbook(names)
    missing = [n for n in names if n not in workbook.milestones]
    if missing:
        raise StateError(
            f"the workbook lacks milestones {missing}; create it with Workbook({names!r})"
        )
    index = {name: i for i, name in enumerate(workbook.milestones)}
    prepared: list[PreparedScenario] = []
    first = workbook.rows
    for i, scenario in enumerate(plan.scenarios):
        _check_executors(scenario, executors)
        prepared.append(prepare(i, scenario, first, index, qualified))
        first += scenario.users
    return workbook, tuple(prepared)


def _check_executors(scenario: ScenarioPlan, executors: Mapping[str, object]) -> None:
    for step in scenario.steps:
        if step.kind in ("http", "exec", "external") and step.kind not in executors:
            raise StateError(
                f"scenario {scenario.name!r} step {step.name!r} is an {step.kind} step "
                f"but no {step.kind} executor is configured; pass executors="
                f"{{'{step.kind}': ...}} to the Runner"
            )
