"""Resources: ``ip-port-pool`` pools, leases bound to progress, health checks with hysteresis.

Start at ``manager.py``: its module note describes the seams (scheduler, progress binding,
event sink) and the failure actions.
"""

from __future__ import annotations

from progressd.resources.checks import ExecCheck, HealthCheck, HttpCheck, TcpCheck, run_check
from progressd.resources.demand import DemandForecast
from progressd.resources.leases import Lease, LeaseRequest, LeaseTable
from progressd.resources.manager import ResourceManager
from progressd.resources.members import CheckResult, Hysteresis, Member, MemberState, Transition
from progressd.resources.pool import Pool, parse_members
from progressd.resources.records import (
    CapacityForecast,
    CheckCompleted,
    CheckStatistics,
    DemandRecord,
    FailureAction,
    LeaseRecord,
    LeasesExpired,
    LeaseStatistics,
    MemberRecord,
    MemberTransition,
    OnFailure,
    PoolRecord,
    PoolStatistics,
    ResourceEvent,
    ResourceStatistics,
)
from progressd.resources.router import RunRouter
from progressd.resources.scheduling import FakeScheduler, LoopScheduler, PollerScheduler
from progressd.resources.seams import (
    Cancellable,
    EventSink,
    ListSink,
    NullSink,
    ProgressBinding,
    RecordingBinding,
    Scheduler,
)
from progressd.resources.spec import (
    HealthCheckConfig,
    HealthCheckSpec,
    LeaseConfig,
    LeaseSpec,
    PoolConfig,
    PoolSpec,
)
from progressd.resources.waiters import Waiter, WaitQueue

__all__ = [
    "Cancellable",
    "CapacityForecast",
    "CheckCompleted",
    "CheckResult",
    "CheckStatistics",
    "DemandForecast",
    "DemandRecord",
    "EventSink",
    "ExecCheck",
    "FailureAction",
    "FakeScheduler",
    "HealthCheck",
    "HealthCheckConfig",
    "HealthCheckSpec",
    "HttpCheck",
    "Hysteresis",
    "Lease",
    "LeaseConfig",
    "LeaseRecord",
    "LeaseRequest",
    "LeaseSpec",
    "LeaseStatistics",
    "LeaseTable",
    "LeasesExpired",
    "ListSink",
    "LoopScheduler",
    "Member",
    "MemberRecord",
    "MemberState",
    "MemberTransition",
    "NullSink",
    "OnFailure",
    "PollerScheduler",
    "Pool",
    "PoolConfig",
    "PoolRecord",
    "PoolSpec",
    "PoolStatistics",
    "ProgressBinding",
    "RecordingBinding",
    "ResourceEvent",
    "ResourceManager",
    "ResourceStatistics",
    "RunRouter",
    "Scheduler",
    "TcpCheck",
    "Transition",
    "WaitQueue",
    "Waiter",
    "parse_members",
    "run_check",
]
