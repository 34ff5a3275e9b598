from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from progressd.dsl import (
    RenderError,
    compile_condition,
    compile_template,
    load_plan_text,
    render_json,
)
from progressd.dsl import templates as templates_module
from progressd.dsl.sandbox import TEMPLATE_ENV

CTX: dict[str, Any] = {
    "vars": {"token": "abc", "items": [10, 20], "n": 3, "my-key": "k", "flag": False},
    "lease": {"address": "127.0.0.1:18081", "host": "127.0.0.1", "port": 18081},
    "user": {"id": 7, "iteration": 2},
    "progress": {"ratio": 0.25},
}


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("http://127.0.0.1/", "static"),
        ("http://{{ lease.address }}/users/{{ user.id }}", "direct"),
        ("{{ vars.items[1] }}{literal braces}", "direct"),
        ("{{ vars['my-key'] }}", "direct"),
        ("{{ user.id + 1 }}/{{ lease.address }}", "mixed"),
        ("{{ vars.token | upper }}", "mixed"),
        ("{{ vars['0'] }}", "mixed"),
        ("a {# comment #}b", "static"),
        ("say \"hi\" {x} \\ 'q'\n{{ user.id }}{{ vars.items[0] }}", "direct"),
    ],
)
def test_template_picks_cheapest_renderer_and_matches_jinja(source: str, kind: str) -> None:
    template = compile_template(source)
    assert template.kind == kind
    reference = TEMPLATE_ENV.from_string(source)  # the full Jinja2 path, item-first lookups
    ctx = {**CTX, "vars": {**CTX["vars"], "0": "zero"}}
    assert template.render(ctx) == reference.render(ctx)


def test_template_direct_render_is_one_format_call() -> None:
    template = compile_template("http://{{ lease.address }}/u/{{ user.id }}")
    assert template.render(CTX) == "http://127.0.0.1:18081/u/7"
    assert template.render({"lease": {"address": 1}, "user": {"id": []}}) == "http://1/u/[]"


@pytest.mark.parametrize(
    "source", ["{{ vars.nope }}", "x{{ lease.address }}", "{{ user.id + vars.nope }}"]
)
def test_template_missing_field_raises_render_error(source: str) -> None:
    with pytest.raises(RenderError, match="missing field"):
        compile_template(source).render({"vars": {}, "user": {"id": 1}})


def test_template_and_condition_are_cached_by_source_text() -> None:
    assert compile_template("{{ user.id }}!") is compile_template("{{ user.id }}!")
    assert compile_condition("{{ vars.token }}") is compile_condition("{{ vars.token }}")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ vars.token }}", True),
        ("vars.token", True),
        ("{{ vars.flag }}", False),
        ("{{ vars.missing }}", False),
        ("{{ vars.missing.deeper }}", False),
        ("{{ user.iteration >= 2 and progress.ratio < 0.5 }}", True),
        ("{{ vars.items | length == 2 }}", True),
        ("{{ lease.port is defined }}", True),
        ("{{ scenario.name is undefined }}", True),
    ],
)
def test_condition_evaluates(source: str, expected: bool) -> None:
    assert compile_condition(source).evaluate(CTX) is expected


@pytest.mark.parametrize("source", ["", "{{ }}", "{{ a }} and {{ b }}", "{% if x %}", "vars.x +"])
def test_condition_rejects_malformed(source: str) -> None:
    from progressd.dsl import ExpressionError

    with pytest.raises(ExpressionError):
        compile_condition(source)


def test_render_json_renders_string_leaves_only() -> None:
    body = {"user": "u-{{ user.id }}", "n": 3, "list": ["{{ vars.token }}", None], "{{ k }}": 1}
    assert render_json(body, CTX) == {"user": "u-7", "n": 3, "list": ["abc", None], "{{ k }}": 1}


def test_plan_templates_render_through_the_cache() -> None:
    plan = load_plan_text(
        "version: 2\nname: t\nload:\n  scenarios:\n    - name: s\n      steps:\n"
        '        - http: {url: "http://{{ lease.address }}/{{ user.id }}"}\n',
        cache=None,
    )
    spec = plan.scenarios[0].steps[0].spec
    assert spec.url.render(CTX) == "http://127.0.0.1:18081/7"  # type: ignore[union-attr]
    assert spec.url.compiled() is compile_template(spec.url.source)  # type: ignore[union-attr]


_literal = st.text(st.characters(blacklist_characters="{}\r", blacklist_categories=("Cs",)))
_placeholder = st.sampled_from(
    ["{{ user.id }}", "{{lease.address}}", "{{ vars.a | upper }}", "{{ vars['k'] }}",
     "{{- user.id }}", "{{ '}}' }}", "{{ vars.items[0] }}"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_literal, _placeholder), max_size=6))
def test_template_simple_split_agrees_with_jinja_lexer(pieces: list[str]) -> None:
    source = "".join(pieces)
    simple = templates_module._split_simple(source)
    if simple is not None:
        assert simple == templates_module._split_lexed(source)


def test_condition_on_missing_field_is_false_and_bad_values_raise() -> None:
    assert compile_condition("user.id > 3").evaluate({}) is False
    with pytest.raises(RenderError, match="not supported"):
        compile_condition("vars.a > 3").evaluate({"vars": {"a": "x"}})
    with pytest.raises(RenderError, match="division by zero"):
        compile_template("{{ 1 / vars.z }}").render({"vars": {"z": 0}})


def test_milestone_identity_is_its_name_not_the_step_name() -> None:
    plan = load_plan_text(
        "version: 2\nname: t\nresources: {ip-port-pool: {p: {members: [h:1]}}}\n"
        "load:\n  scenarios:\n    - name: s\n"
        "      resource_lease: {pool: p, release-on: milestone:paid}\n"
        "      steps: [{think: 1s}, {name: pay-step, milestone: paid}]\n",
        cache=None,
    )
    assert plan.scenarios[0].milestones == ("paid",)
    assert plan.scenarios[0].steps[1].name == "pay-step"
