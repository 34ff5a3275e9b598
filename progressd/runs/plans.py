"""Plan adjustments a run makes before it starts (``--users N``)."""

from __future__ import annotations

import msgspec

from progressd.dsl import Plan, ScenarioPlan
from progressd.errors import StateError

__all__ = ["with_users"]


def with_users(plan: Plan, users: int | None) -> Plan:
    """``plan`` with every scenario's ``users`` set to ``users`` (and its total work with it);
    ``plan`` itself when ``users`` is ``None``.

    Raises:
        StateError: when ``users`` is negative.
    """
    if users is None:
        return plan
    if users < 0:
        raise StateError(f"--users must be 0 or more, got {users}")
    scenarios = tuple(_scaled(scenario, users) for scenario in plan.scenarios)
    return msgspec.structs.replace(plan, scenarios=scenarios)


def _scaled(scenario: ScenarioPlan, users: int) -> ScenarioPlan:
    per_user = scenario.work_per_user
    return msgspec.structs.replace(
        scenario, users=users, work_total=None if per_user is None else per_user * users
    )
