"""``resources.ip-port-pool``: member addresses, ranges and health checks.

A member is ``host:port``; a range ``127.0.0.1:18081-18090`` expands to ten members. Hosts
are IPv4 addresses, host names, or bracketed IPv6 addresses (``[::1]:8080``). Members must
be unique within a pool.
"""

from __future__ import annotations

import re

from progressd.dsl.positions import Path, SpecError
from progressd.dsl.schema import HealthCheck, Pool
from progressd.dsl.values import duration_at
from progressd.dsl.wbs import HealthCheckPlan, PoolPlan

MAX_RANGE = 10_000
"""Most members one range may expand to."""

_MEMBER = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?)"
    r":(?P<lo>\d{1,5})(?:-(?P<hi>\d{1,5}))?"
)
_HINT = 'expected "host:port" or a range "host:first-last" like "127.0.0.1:18081-18090"'


def expand_member(text: str, path: Path) -> list[str]:
    """The addresses one member entry stands for.

    Raises:
        SpecError: when the entry is malformed, a port is out of range, or a range is
            reversed or too long.
    """
    match = _MEMBER.fullmatch(text.strip())
    if match is None:
        raise SpecError(path, f'{_HINT}, got "{text}"')
    host, lo = match.group("host"), int(match.group("lo"))
    hi = int(match.group("hi") or lo)
    for port in (lo, hi):
        if not 1 <= port <= 65535:
            raise SpecError(path, f'port {port} in "{text}" is outside 1-65535')
    if hi < lo:
        raise SpecError(path, f'range "{text}" ends before it starts; write "{host}:{hi}-{lo}"')
    if hi - lo + 1 > MAX_RANGE:
        raise SpecError(path, f'range "{text}" has {hi - lo + 1} ports; at most {MAX_RANGE}')
    return [f"{host}:{port}" for port in range(lo, hi + 1)]


def build_pool(name: str, pool: Pool, path: Path) -> PoolPlan:
    """The plan of one pool. Raises: SpecError on a bad member or health check."""
    members: list[str] = []
    seen: dict[str, int] = {}
    if not pool.members:
        raise SpecError((*path, "members"), "a pool needs at least one member")
    for index, entry in enumerate(pool.members):
        for address in expand_member(entry, (*path, "members", index)):
            if address in seen:
                raise SpecError(
                    (*path, "members", index),
                    f'duplicate member "{address}" (already in members[{seen[address]}])',
                )
            seen[address] = index
            members.append(address)
    check = pool.health_check
    return PoolPlan(
        name=name,
        members=tuple(members),
        health_check=None if check is None else _health_check(check, (*path, "health-check")),
        max_leases_per_member=pool.max_leases_per_member,
    )


def _health_check(check: HealthCheck, path: Path) -> HealthCheckPlan:
    interval = duration_at(check.interval, (*path, "interval"))
    timeout = duration_at(check.timeout, (*path, "timeout"))
    if interval <= 0:
        raise SpecError((*path, "interval"), "the interval must be longer than 0s")
    if timeout <= 0 or timeout > interval:
        raise SpecError(
            (*path, "timeout"),
            f"the timeout must be above 0s and at most the interval ({check.interval})",
        )
    if check.kind == "exec" and not check.argv:
        raise SpecError((*path, "argv"), 'an exec health check needs "argv"')
    if check.kind != "exec" and check.argv:
        raise SpecError((*path, "argv"), f'"argv" is only for kind: exec, not {check.kind}')
    return HealthCheckPlan(
        kind=check.kind,
        interval_s=interval,
        timeout_s=timeout,
        successes_before_passing=check.successes_before_passing,
        failures_before_critical=check.failures_before_critical,
        on_failure=check.on_failure,
        path=check.path,
        expect_status=check.expect_status,
        argv=tuple(check.argv),
    )


__all__ = ["MAX_RANGE", "build_pool", "expand_member"]
