"""One scenario's ``steps`` -> ``StepPlan`` records (kinds, expectations, guards, names).

A step has exactly one kind (``http``, ``think``, ``exec``, ``external``, ``milestone``),
optionally a ``when`` guard, and for ``http``/``exec`` optional ``expect`` and ``extract``.
Every templated string and guard is compiled here; the fields they read are collected so
the scenario builder can check each ``vars.NAME`` against the variables that exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from progressd.dsl.positions import Path, SpecError
from progressd.dsl.schema import STEP_KINDS, Exec, Expect, Http, Milestone, Step, ThinkRange
from progressd.dsl.values import (
    condition_at,
    duration_at,
    optional_duration_at,
    template_at,
)
from progressd.dsl.wbs import (
    ExecSpec,
    ExternalSpec,
    HttpSpec,
    MilestoneSpec,
    StepKind,
    StepPlan,
    StepSpec,
    Template,
    ThinkSpec,
)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_JSON_PATH = r"json(?:\.[A-Za-z0-9_\-]+|\[\d+\])*"
_EXTRACT = {
    "http": re.compile(rf"{_JSON_PATH}|status|body"),
    "exec": re.compile(rf"{_JSON_PATH}|stdout|exit_code"),
}
_EXTRACT_HINT = {
    "http": '"json.a.b", "json.items[0]", "status" or "body"',
    "exec": '"json.a.b" (stdout parsed as JSON), "stdout" or "exit_code"',
}

# The load client keeps no response headers (steps/http.py ``extract_path`` refuses them).
_NO_HEADERS = "response headers cannot be extracted yet; use json.PATH, status or body"


@dataclass(slots=True)
class StepsBuilder:
    """Builds the steps of one scenario and remembers what their expressions read."""

    path: Path
    reads: list[tuple[Path, tuple[str, ...]]] = field(default_factory=list)
    extracted: set[str] = field(default_factory=set)

    def build(self, steps: list[Step]) -> list[StepPlan]:
        """Plans for ``steps`` (milestone weights not yet normalised).

        Raises:
            SpecError: on the first invalid step.
        """
        if not steps:
            raise SpecError(self.path, "a scenario needs at least one step")
        return [self._step(index, step) for index, step in enumerate(steps)]

    def _step(self, index: int, step: Step) -> StepPlan:
        path = (*self.path, index)
        kind = _kind_of(step, path)
        _check_expect(step.expect, kind, (*path, "expect"))
        self._extract(step, kind, (*path, "extract"))
        spec = self._spec(step, kind, path)
        when = None
        if step.when is not None:
            when = condition_at(step.when, (*path, "when"))
            self.reads.append(((*path, "when"), when.fields))
        name = step.name or (spec.name if isinstance(spec, MilestoneSpec) else f"{kind}-{index}")
        return StepPlan(
            index=index,
            name=name,
            kind=kind,
            spec=spec,
            when=when,
            is_milestone=kind == "milestone",
            milestone_weight=spec.weight if isinstance(spec, MilestoneSpec) else 0.0,
        )

    def _spec(self, step: Step, kind: StepKind, path: Path) -> StepSpec:
        where = (*path, kind)
        if step.http is not None:
            return self._http(step.http, step.expect, step.extract, where)
        if step.think is not None:
            return _think(step.think, where)
        if step.exec is not None:
            return self._exec(step.exec, step.expect or Expect(), step.extract, path)
        if step.external is not None:
            return ExternalSpec(
                key=self._template(step.external.key, (*where, "key")),
                timeout_s=optional_duration_at(step.external.timeout, (*where, "timeout")),
            )
        assert step.milestone is not None  # _kind_of found exactly one kind
        return _milestone(step.milestone, where)

    def _exec(self, exec_: Exec, expect: Expect, extract: dict[str, str], path: Path) -> ExecSpec:
        where = (*path, "exec")
        if not exec_.argv:
            raise SpecError((*where, "argv"), "argv needs at least the program to run")
        return ExecSpec(
            argv=tuple(self._template(a, (*where, "argv", i)) for i, a in enumerate(exec_.argv)),
            timeout_s=optional_duration_at(exec_.timeout, (*where, "timeout")),
            env=tuple((k, self._template(v, (*where, "env", k))) for k, v in exec_.env.items()),
            cwd=exec_.cwd,
            expect_exit_code=0 if expect.exit_code is None else expect.exit_code,
            expect_latency_s=optional_duration_at(expect.latency, (*path, "expect", "latency")),
            extract=tuple(extract.items()),
        )

    def _http(
        self, http: Http, expect: Expect | None, extract: dict[str, str], path: Path
    ) -> HttpSpec:
        method = http.method.upper()
        if method not in HTTP_METHODS:
            raise SpecError((*path, "method"), f'unknown HTTP method "{http.method}"; expected '
                            + ", ".join(sorted(HTTP_METHODS)))  # fmt: skip
        if http.json is not None and http.body is not None:
            raise SpecError((*path, "body"), 'give either "json" or "body", not both')
        self._json_reads(http.json, (*path, "json"))
        expect = expect or Expect()
        status = expect.status
        statuses = (status,) if isinstance(status, int) else tuple(status or ())
        return HttpSpec(
            method=method,
            url=self._template(http.url, (*path, "url")),
            headers=tuple(
                (k, self._template(v, (*path, "headers", k))) for k, v in http.headers.items()
            ),
            json=http.json,
            body=None if http.body is None else self._template(http.body, (*path, "body")),
            timeout_s=optional_duration_at(http.timeout, (*path, "timeout")),
            expect_status=statuses,
            expect_latency_s=optional_duration_at(
                expect.latency, (*path[:-1], "expect", "latency")
            ),
            extract=tuple(extract.items()),
        )

    def _template(self, source: str, path: Path) -> Template:
        template = template_at(source, path)
        if template.fields:
            self.reads.append((path, template.fields))
        return template

    def _json_reads(self, value: object, path: Path) -> None:
        if isinstance(value, str):
            self._template(value, path)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._json_reads(item, (*path, index))
        elif isinstance(value, dict):
            for key, item in value.items():
                self._json_reads(item, (*path, str(key)))

    def _extract(self, step: Step, kind: StepKind, path: Path) -> None:
        if not step.extract:
            return
        if kind not in _EXTRACT:
            raise SpecError(path, f'"extract" applies to http and exec steps, not {kind}',
                            at_key=True)  # fmt: skip
        for name, source in step.extract.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise SpecError((*path, name), f'variable name "{name}" is not an identifier',
                                at_key=True)  # fmt: skip
            if kind == "http" and source.startswith("header."):
                raise SpecError((*path, name), _NO_HEADERS)
            if not _EXTRACT[kind].fullmatch(source):
                raise SpecError((*path, name), f'expected {_EXTRACT_HINT[kind]}, got "{source}"')
            self.extracted.add(name)


def _kind_of(step: Step, path: Path) -> StepKind:
    kinds = [k for k in STEP_KINDS if getattr(step, k) is not None]
    if not kinds:
        raise SpecError(path, "a step needs one of: " + ", ".join(STEP_KINDS))
    if len(kinds) > 1:
        raise SpecError((*path, kinds[1]), f'a step has one kind, found "{kinds[0]}" and '
                        f'"{kinds[1]}": split it into two steps', at_key=True)  # fmt: skip
    return kinds[0]


def _check_expect(expect: Expect | None, kind: StepKind, path: Path) -> None:
    if expect is None:
        return
    if kind not in ("http", "exec"):
        raise SpecError(path, f'"expect" applies to http and exec steps, not {kind}', at_key=True)
    if kind == "exec" and expect.status is not None:
        raise SpecError((*path, "status"), 'an exec step expects "exit-code", not "status"',
                        at_key=True)  # fmt: skip
    if kind == "http" and expect.exit_code is not None:
        raise SpecError((*path, "exit-code"), 'an http step expects "status", not "exit-code"',
                        at_key=True)  # fmt: skip
    statuses = [expect.status] if isinstance(expect.status, int) else expect.status or []
    for status in statuses:
        if not 100 <= status <= 599:
            raise SpecError((*path, "status"), f"HTTP status {status} is outside 100-599")


def _think(think: str | int | float | ThinkRange, path: Path) -> ThinkSpec:
    if isinstance(think, ThinkRange):
        low = duration_at(think.min, (*path, "min"))
        high = duration_at(think.max, (*path, "max"))
        if high < low:
            raise SpecError((*path, "max"), f"max ({think.max}) is below min ({think.min})")
        return ThinkSpec(min_s=low, max_s=high)
    seconds = duration_at(think, path)
    return ThinkSpec(min_s=seconds, max_s=seconds)


def _milestone(milestone: str | Milestone, path: Path) -> MilestoneSpec:
    if isinstance(milestone, str):
        return MilestoneSpec(name=milestone, weight=1.0)
    if not milestone.weight > 0:
        raise SpecError((*path, "weight"), f"a milestone weight is above 0, got {milestone.weight}")
    return MilestoneSpec(name=milestone.name, weight=milestone.weight)


__all__ = ["HTTP_METHODS", "StepsBuilder"]
