"""The scenario document (``version: 2``) as msgspec Structs: the shape, nothing more.

These types say which fields exist, their YAML spelling (kebab-case, except the roadmap's
fixed ``resource_lease``), their types and their defaults. Meaning — durations, templates,
references between sections, "exactly one of" rules — is checked by ``build.py`` while it
turns a ``Document`` into the immutable plan (``wbs.py``). Keeping shape and meaning apart
lets msgspec decode a whole document in one C call and lets error positions be found only
when something is wrong.

Durations stay strings here (``"250ms"``) so one parser (``progressd.units``) gives one
message shape, with the place added by the builder.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Duration = str | int | float
"""A duration as written: ``"250ms"``, ``"1h30m"``, or a bare number of seconds."""

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(min_length=1)]
Scalar = str | int | float | bool | None

OnFailure = Literal["rollback", "release", "ignore", "abort"]
CheckKind = Literal["tcp", "http", "exec"]
LeasePer = Literal["user", "scenario"]
PriorityLevel = Literal["low", "normal", "high", "critical"]
SamplingMode = Literal["full", "sampled", "aggregated"]
Level = Literal["low", "medium", "high"]


class Spec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, rename="kebab"):
    """Base of every document Struct: unknown fields fail, YAML names are kebab-case."""


# -- progress -----------------------------------------------------------------------------


class Batching(Spec, frozen=True, kw_only=True):
    max_batch_size: PositiveInt = 512
    flush_interval: Duration = "50ms"
    priority_threshold: PriorityLevel = "high"


class Poller(Spec, frozen=True, kw_only=True):
    priorities: dict[str, NonNegativeInt] = {}
    budget: PositiveInt = 1024
    io_budget: PositiveInt | None = None


class Sampling(Spec, frozen=True, kw_only=True):
    mode: SamplingMode = "full"
    rate: float | None = None
    window: Duration | None = None


class Progress(Spec, frozen=True, kw_only=True):
    batching: Batching = Batching()
    poller: Poller = Poller()
    sampling: SamplingMode | Sampling = "full"
    deadline: Duration | None = None


# -- resources ----------------------------------------------------------------------------


class HealthCheck(Spec, frozen=True, kw_only=True):
    kind: CheckKind = "tcp"
    interval: Duration = "10s"
    timeout: Duration = "1s"
    successes_before_passing: PositiveInt = 1
    failures_before_critical: PositiveInt = 1
    on_failure: OnFailure = "rollback"
    path: str = "/"
    expect_status: int = 200
    argv: list[str] = []


class Pool(Spec, frozen=True, kw_only=True):
    members: list[str]
    health_check: HealthCheck | None = None
    max_leases_per_member: PositiveInt | None = None


class Resources(Spec, frozen=True, kw_only=True):
    ip_port_pool: dict[Name, Pool] = {}


# -- steps --------------------------------------------------------------------------------


class Http(Spec, frozen=True, kw_only=True):
    url: str
    method: str = "GET"
    headers: dict[str, str] = {}
    json: Any = None
    body: str | None = None
    timeout: Duration | None = None


class ThinkRange(Spec, frozen=True, kw_only=True):
    min: Duration
    max: Duration


class Exec(Spec, frozen=True, kw_only=True):
    argv: list[str]
    timeout: Duration | None = None
    env: dict[str, str] = {}
    cwd: str | None = None


class External(Spec, frozen=True, kw_only=True):
    key: str
    timeout: Duration | None = None


class Milestone(Spec, frozen=True, kw_only=True):
    name: Name
    weight: float = 1.0


class Expect(Spec, frozen=True, kw_only=True):
    status: int | list[int] | None = None
    latency: Duration | None = None
    exit_code: int | None = None


class Step(Spec, frozen=True, kw_only=True):
    """One entry of ``steps``: exactly one of the kind fields is set (checked by the builder)."""

    name: str | None = None
    when: str | None = None
    http: Http | None = None
    think: Duration | ThinkRange | None = None
    exec: Exec | None = None
    external: External | None = None
    milestone: Name | Milestone | None = None
    expect: Expect | None = None
    extract: dict[str, str] = {}


StepKind = Literal["http", "think", "exec", "external", "milestone"]
STEP_KINDS: tuple[StepKind, ...] = ("http", "think", "exec", "external", "milestone")


# -- load ---------------------------------------------------------------------------------


class Lease(Spec, frozen=True, kw_only=True):
    pool: Name
    per: LeasePer = "user"
    ttl: Duration | None = None
    release_on: str = "end"


class ThresholdRule(Spec, frozen=True, kw_only=True):
    threshold: str
    abort_on_fail: bool = False


ThresholdValue = str | ThresholdRule | list[str | ThresholdRule]


class Scenario(Spec, frozen=True, kw_only=True):
    name: Name
    users: PositiveInt = 1
    ramp: Duration = 0
    iterations: PositiveInt | None = None
    duration: Duration | None = None
    graceful_stop: Duration = "30s"
    priority: int = 0
    business_value: float = 1.0
    resource_lease: Lease | None = msgspec.field(default=None, name="resource_lease")
    steps: list[Step]
    thresholds: dict[str, ThresholdValue] = {}


class Load(Spec, frozen=True, kw_only=True):
    scenarios: list[Scenario]


# -- project management (shape only for now) ----------------------------------------------


class ProcessGroup(Spec, frozen=True, kw_only=True):
    description: str | None = None
    owner: str | None = None
    milestones: list[str] = []
    entry_criteria: list[str] = []
    exit_criteria: list[str] = []


class Timeline(Spec, frozen=True, kw_only=True):
    initiating: ProcessGroup | None = None
    planning: ProcessGroup | None = None
    executing: ProcessGroup | None = None
    monitoring: ProcessGroup | None = None
    closing: ProcessGroup | None = None


class Stakeholder(Spec, frozen=True, kw_only=True):
    name: Name
    role: str | None = None
    interest: Level = "medium"
    influence: Level = "medium"
    contact: str | None = None


class Registers(Spec, frozen=True, kw_only=True):
    stakeholders: list[Stakeholder] = []


# -- the document -------------------------------------------------------------------------


class Document(Spec, frozen=True, kw_only=True):
    """A version 2 scenario document."""

    version: Literal[2]
    name: Name
    description: str | None = None
    vars: dict[str, Scalar] = {}
    progress: Progress = Progress()
    resources: Resources = Resources()
    load: Load
    timeline: Timeline | None = None
    registers: Registers | None = None
