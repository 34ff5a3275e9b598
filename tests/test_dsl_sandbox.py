"""Template injection payloads fail at load time; dependency sets are exact."""

from __future__ import annotations

import pytest

from progressd.dsl import (
    ExpressionError,
    RenderError,
    compile_condition,
    compile_template,
    load_plan_text,
)
from progressd.errors import DslError

PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id') }}",
    "{{ lipsum }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{{ range(10**9) }}",
    "{{ dict(a=1) }}",
    "{% import os %}",
    "{% for x in vars %}{{ x }}{% endfor %}",
    "{% set x = 1 %}",
    "{% raw %}x{% endraw %}",
    "{{ vars|attr('__class__') }}",
    "{{ vars.x|map(attribute='__class__')|list }}",
    "{{ vars['__class__'] }}",
    "{{ vars._private }}",
    "{{ lease.address.__len__() }}",
    "{{ vars.s.format(1) }}",
    "{{ 2 ** 100000000 }}",
    "{{ env.HOME }}",
    "{{ os.environ }}",
    "{{ __builtins__ }}",
    "{{ [].pop() }}",
    "{{ vars.x|selectattr('__class__') }}",
    "{{ (vars.a or vars.b).__class__ }}",
    "{{ {'a': 1}.__class__ }}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sandbox_rejects_payload_as_template(payload: str) -> None:
    with pytest.raises(ExpressionError):
        compile_template(payload)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sandbox_rejects_payload_as_condition(payload: str) -> None:
    with pytest.raises(ExpressionError):
        compile_condition(payload)


@pytest.mark.parametrize("payload", PAYLOADS[:12])
def test_sandbox_payload_fails_document_load_with_position(payload: str) -> None:
    doc = (
        "version: 2\nname: t\nvars: {a: 1, b: 2, x: 3, s: y}\nload:\n  scenarios:\n"
        "    - name: s\n      steps:\n        - http:\n            url: "
        + repr(payload).replace("\\'", "''")
        + "\n"
    )
    with pytest.raises(DslError) as info:
        load_plan_text(doc, cache=None)
    assert info.value.line == 9
    column = info.value.column
    assert column is not None
    assert 18 <= column < 18 + len(repr(payload))  # at the culprit inside the scalar
    assert info.value.message.startswith("bad template")


@pytest.mark.parametrize(
    ("expression", "fields"),
    [
        ("vars.token", {"vars.token"}),
        ("vars['token']", {"vars.token"}),
        ("lease.address", {"lease.address"}),
        ("user.id > 3 and progress.ratio < 0.5", {"user.id", "progress.ratio"}),
        ("vars.items[0]", {"vars.items"}),
        ("vars.items[user.index]", {"vars.items", "user.index"}),
        ("vars[vars.key]", {"vars", "vars.key"}),
        ("vars.a.b.c", {"vars.a.b.c"}),
        ("vars.count | default(0) + 1", {"vars.count"}),
        ("run.name ~ '-' ~ scenario.name", {"run.name", "scenario.name"}),
        ("vars.x if user.iteration else vars.y", {"vars.x", "user.iteration", "vars.y"}),
        ("user.id is even", {"user.id"}),
        ("'a' in vars.tags", {"vars.tags"}),
        ("not vars.done", {"vars.done"}),
        ("[vars.a, lease.port][1]", {"vars.a", "lease.port"}),
        ("{'k': progress.done}", {"progress.done"}),
        ("vars.s[1:3]", {"vars.s"}),
        ("vars.name | replace('a', user.id | string)", {"vars.name", "user.id"}),
        ("1 + 2", set()),
        ("lease", {"lease"}),
    ],
)
def test_condition_fields_are_exact(expression: str, fields: set[str]) -> None:
    assert compile_condition(expression).fields == frozenset(fields)
    assert compile_template("{{ " + expression + " }}").fields == frozenset(fields)


def test_repetition_is_bounded_at_run_time() -> None:
    condition = compile_condition("vars.s * vars.n")
    with pytest.raises(RenderError, match="repetition longer than 100000"):
        condition.evaluate({"vars": {"s": "x", "n": 10**9}})
    assert compile_condition("vars.s * 3").evaluate({"vars": {"s": "x"}})


def test_condition_lookups_read_items_not_attributes() -> None:
    # ``vars.items`` must be the variable, not dict.items.
    condition = compile_condition("vars.items == 3")
    assert condition.evaluate({"vars": {"items": 3}})
    assert not compile_condition("vars.items").evaluate({"vars": {}})
