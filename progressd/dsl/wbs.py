"""The work breakdown structure (WBS): what the runner, poller and resource manager consume.

Design note
-----------
``Plan`` -> ``ScenarioPlan`` -> ``StepPlan`` are frozen msgspec Structs holding only plain
data: durations in seconds, names, and for every ``{{ ... }}`` its *source text* and the
fields it reads. The compiled forms live in the source-text caches of ``conditions.py`` and
``templates.py``; ``Condition.compiled()`` / ``Template.compiled()`` fetch them (compiling
again only if the cache was emptied). So a plan encodes with ``msgspec.msgpack`` or JSON as
is, a later binary format is a one-liner, and nothing downstream re-reads YAML.

Hot-path callers should fetch ``step.when.compiled()`` / ``url.compiled()`` once per step and
keep the returned object, not call ``render``/``evaluate`` on the Struct per user.

Invariants (established by ``build.py``):
- step ``index`` values are 0..n-1 in order; step names are unique within a scenario;
- ``milestones`` lists the scenario's milestone names in step order, unique;
- milestone weights of a scenario sum to 1.0 (or there are no milestones);
- ``work_steps`` counts the non-milestone steps of one iteration.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from progressd.dsl.conditions import CompiledCondition, compile_condition
from progressd.dsl.context import Context
from progressd.dsl.schema import Registers, StepKind, Timeline
from progressd.dsl.templates import CompiledTemplate, compile_template


class Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every WBS record."""


class Template(Record, frozen=True, kw_only=True):
    """A templated string: its source and the fields it reads."""

    source: str
    fields: tuple[str, ...] = ()

    def compiled(self) -> CompiledTemplate:
        """The compiled renderer (from the source-text cache)."""
        return compile_template(self.source)

    def render(self, ctx: Context) -> str:
        """Render for one context. Raises: RenderError on a missing field."""
        return compile_template(self.source).render(ctx)


class Condition(Record, frozen=True, kw_only=True):
    """A ``when:`` guard: its source and the fields it reads."""

    source: str
    fields: tuple[str, ...] = ()

    def compiled(self) -> CompiledCondition:
        """The compiled evaluator (from the source-text cache)."""
        return compile_condition(self.source)

    def evaluate(self, ctx: Context) -> bool:
        """Truth for one context; missing fields are false."""
        return compile_condition(self.source).evaluate(ctx)


# -- progress and resources ---------------------------------------------------------------


class BatchingPlan(Record, frozen=True, kw_only=True):
    max_batch_size: int
    flush_interval_s: float
    priority_threshold: Literal["low", "normal", "high", "critical"]


class PollerPlan(Record, frozen=True, kw_only=True):
    priorities: dict[str, int]
    """Every pollable class with its priority (0 runs first); defaults filled in."""
    budget: int
    io_budget: int
    """The budget of an iteration while completions are queued (``Poller``); defaulted."""


class SamplingPlan(Record, frozen=True, kw_only=True):
    mode: Literal["full", "sampled", "aggregated"]
    rate: float | None = None
    window_s: float | None = None


class ProgressPlan(Record, frozen=True, kw_only=True):
    batching: BatchingPlan
    poller: PollerPlan
    sampling: SamplingPlan
    deadline_s: float | None = None
    """Seconds from the run's start by which it should be done (``progress.deadline``)."""


class HealthCheckPlan(Record, frozen=True, kw_only=True):
    kind: Literal["tcp", "http", "exec"]
    interval_s: float
    timeout_s: float
    successes_before_passing: int
    failures_before_critical: int
    on_failure: Literal["rollback", "release", "ignore", "abort"]
    path: str = "/"
    expect_status: int = 200
    argv: tuple[str, ...] = ()


class PoolPlan(Record, frozen=True, kw_only=True):
    name: str
    members: tuple[str, ...]
    """``host:port`` addresses, ranges expanded, in document order."""
    health_check: HealthCheckPlan | None = None
    max_leases_per_member: int | None = None


class LeasePlan(Record, frozen=True, kw_only=True):
    pool: str
    per: Literal["user", "scenario"]
    ttl_s: float | None
    release_on: Literal["end", "milestone"]
    release_milestone: str | None = None


class ThresholdPlan(Record, frozen=True, kw_only=True):
    """``http_req_duration: "p95 < 500ms"`` -> metric, aggregate, op, value (base units)."""

    source: str
    metric: str
    aggregate: str
    """``avg``, ``min``, ``max``, ``med``, ``p`` (with ``percentile``), ``rate``, ``count``."""
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float
    """Seconds for duration metrics, a ratio for rates, a number for counts."""
    percentile: float | None = None
    step: str | None = None
    abort_on_fail: bool = False


# -- steps --------------------------------------------------------------------------------


class HttpSpec(Record, frozen=True, kw_only=True, tag="http", tag_field="type"):
    method: str
    url: Template
    headers: tuple[tuple[str, Template], ...] = ()
    json: Any = None
    """JSON body; string leaves may be templates (render with ``templates.render_json``)."""
    body: Template | None = None
    timeout_s: float | None = None
    expect_status: tuple[int, ...] = ()
    expect_latency_s: float | None = None
    extract: tuple[tuple[str, str], ...] = ()
    """(variable, source) pairs; source is ``json.a.b[0]``, ``status`` or ``body`` (the DSL
    refuses ``header.Name``: the load client keeps no response headers)."""


class ThinkSpec(Record, frozen=True, kw_only=True, tag="think", tag_field="type"):
    min_s: float
    max_s: float


class ExecSpec(Record, frozen=True, kw_only=True, tag="exec", tag_field="type"):
    argv: tuple[Template, ...]
    timeout_s: float | None = None
    env: tuple[tuple[str, Template], ...] = ()
    cwd: str | None = None
    expect_exit_code: int = 0
    expect_latency_s: float | None = None
    extract: tuple[tuple[str, str], ...] = ()
    """(variable, source) pairs; source is ``json.a.b[0]`` (stdout parsed as JSON),
    ``stdout`` or ``exit_code``."""


class ExternalSpec(Record, frozen=True, kw_only=True, tag="external", tag_field="type"):
    key: Template
    timeout_s: float | None = None


class MilestoneSpec(Record, frozen=True, kw_only=True, tag="milestone", tag_field="type"):
    name: str
    weight: float
    """Normalised: the weights of a scenario's milestones sum to 1."""


StepSpec = HttpSpec | ThinkSpec | ExecSpec | ExternalSpec | MilestoneSpec


class StepPlan(Record, frozen=True, kw_only=True):
    index: int
    name: str
    kind: StepKind
    spec: StepSpec
    when: Condition | None = None
    is_milestone: bool = False
    milestone_weight: float = 0.0


class ScenarioPlan(Record, frozen=True, kw_only=True):
    name: str
    users: int
    ramp_s: float
    iterations: int | None
    """Iterations per user; ``None`` when the scenario runs for ``duration_s``."""
    duration_s: float | None
    graceful_stop_s: float
    priority: int
    business_value: float
    lease: LeasePlan | None
    thresholds: tuple[ThresholdPlan, ...]
    steps: tuple[StepPlan, ...]
    milestones: tuple[str, ...]
    work_steps: int
    """Non-milestone steps in one iteration."""
    work_per_user: int | None
    """``work_steps * iterations``; ``None`` for duration-bound scenarios."""
    work_total: int | None
    """``work_per_user * users``; ``None`` for duration-bound scenarios."""

    def step(self, name: str) -> StepPlan:
        """The step called ``name``. Raises: KeyError when there is none."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


class Plan(Record, frozen=True, kw_only=True):
    """A whole validated document, ready to run."""

    name: str
    source_hash: str
    """SHA-256 of the document bytes (the cache key)."""
    version: int
    """The document version that was read (1 documents are lifted to this shape)."""
    description: str | None
    vars: dict[str, Any]
    progress: ProgressPlan
    pools: tuple[PoolPlan, ...]
    scenarios: tuple[ScenarioPlan, ...]
    timeline: Timeline | None = None
    registers: Registers | None = None

    def scenario(self, name: str) -> ScenarioPlan:
        """The scenario called ``name``. Raises: KeyError when there is none."""
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        raise KeyError(name)

    def pool(self, name: str) -> PoolPlan:
        """The pool called ``name``. Raises: KeyError when there is none."""
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)

    @property
    def total_users(self) -> int:
        return sum(s.users for s in self.scenarios)

    @property
    def total_steps(self) -> int:
        """Steps across scenarios (per iteration, milestones included)."""
        return sum(len(s.steps) for s in self.scenarios)

    @property
    def total_milestones(self) -> int:
        return sum(len(s.milestones) for s in self.scenarios)

    @property
    def total_work(self) -> int | None:
        """Work steps over all users and iterations; ``None`` if any scenario is timed."""
        totals = [s.work_total for s in self.scenarios]
        return None if any(t is None for t in totals) else sum(t or 0 for t in totals)


__all__ = [
    "BatchingPlan",
    "Condition",
    "ExecSpec",
    "ExternalSpec",
    "HealthCheckPlan",
    "HttpSpec",
    "LeasePlan",
    "MilestoneSpec",
    "Plan",
    "PollerPlan",
    "PoolPlan",
    "ProgressPlan",
    "SamplingPlan",
    "ScenarioPlan",
    "StepKind",
    "StepPlan",
    "StepSpec",
    "Template",
    "ThinkSpec",
    "ThresholdPlan",
]
