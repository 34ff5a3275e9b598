"""Template injection payloads fail at load time; dependency sets are exact."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


_TOKENS = [
    "vars", "lease", "user", "progress", "run", "scenario", ".", "[", "]", "(", ")", "|",
    "+", "-", "*", "/", "//", "%", "~", "==", "<", ">", "and", "or", "not", "in", "is",
    "if", "else", "a", "b", "items", "address", "id", "ratio", "0", "1", "'x'", "''",
    "length", "default", "upper", "int", "defined", "none", "true", ",", "{", "}", ":",
    "_x", "__class__", "cycler", "self", "attr",
]  # fmt: skip
_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "items"]), inner)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=8),
    st.dictionaries(st.sampled_from(["vars", "lease", "user", "progress"]), _values),
)
def test_sandbox_accepted_expressions_fail_only_with_render_error(
    tokens: list[str], ctx: dict[str, object]
) -> None:
    source = " ".join(tokens)
    try:
        condition = compile_condition(source)
    except ExpressionError:
        return
    assert all(not part.startswith("_") for f in condition.fields for part in f.split("."))
    with contextlib.suppress(RenderError):
        condition.evaluate(ctx)
    with contextlib.suppress(RenderError, ExpressionError):
        compile_template("{{ " + source + " }}").render(ctx)
