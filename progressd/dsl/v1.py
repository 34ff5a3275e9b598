"""Version 1 documents, lifted into the version 2 shape so old files keep working.

A v1 document has top-level ``scenarios`` (no ``load``), each with a flat list of
``http``/``think``/``exec`` steps; no milestones, leases, conditions, resources or progress
section. ``version: 1`` is optional: a document without ``version`` that has top-level
``scenarios`` is read as v1. It is decoded with its own (stricter) Structs, so a v2-only
field in a v1 file gets an "unknown field" error, then lifted; the builder's paths are
translated back (``load.scenarios`` -> ``scenarios``) so errors point into the v1 file.
"""

from __future__ import annotations

from typing import Literal

from progressd.dsl.positions import Path
from progressd.dsl.schema import (
    Document,
    Duration,
    Exec,
    Expect,
    Http,
    Load,
    Name,
    PositiveInt,
    Scalar,
    Scenario,
    Spec,
    Step,
    ThinkRange,
    ThresholdValue,
)


class V1Step(Spec, frozen=True, kw_only=True):
    name: str | None = None
    http: Http | None = None
    think: Duration | ThinkRange | None = None
    exec: Exec | None = None
    expect: Expect | None = None
    extract: dict[str, str] = {}


class V1Scenario(Spec, frozen=True, kw_only=True):
    name: Name
    users: PositiveInt = 1
    ramp: Duration = 0
    iterations: PositiveInt | None = None
    duration: Duration | None = None
    steps: list[V1Step]
    thresholds: dict[str, ThresholdValue] = {}


class V1Document(Spec, frozen=True, kw_only=True):
    """A version 1 scenario document."""

    version: Literal[1] = 1
    name: Name
    description: str | None = None
    vars: dict[str, Scalar] = {}
    scenarios: list[V1Scenario]


def lift(doc: V1Document) -> Document:
    """The v2 form of a v1 document (defaults for everything v1 did not have)."""
    return Document(
        version=2,
        name=doc.name,
        description=doc.description,
        vars=doc.vars,
        load=Load(scenarios=[_lift_scenario(s) for s in doc.scenarios]),
    )


def _lift_scenario(scenario: V1Scenario) -> Scenario:
    return Scenario(
        name=scenario.name,
        users=scenario.users,
        ramp=scenario.ramp,
        iterations=scenario.iterations,
        duration=scenario.duration,
        steps=[_lift_step(step) for step in scenario.steps],
        thresholds=scenario.thresholds,
    )


def _lift_step(step: V1Step) -> Step:
    return Step(
        name=step.name,
        http=step.http,
        think=step.think,
        exec=step.exec,
        expect=step.expect,
        extract=step.extract,
    )


def v1_path(path: Path) -> Path:
    """A v2 document path as it is written in the v1 file."""
    if path[:2] == ("load", "scenarios"):
        return ("scenarios", *path[2:])
    return path


__all__ = ["V1Document", "lift", "v1_path"]
