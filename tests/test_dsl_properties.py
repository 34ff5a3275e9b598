"""Property tests: whatever the input, the loader raises ``DslError`` or returns a plan,
and its work grows linearly with the document."""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from progressd.dsl import clear_compiled, compile_condition, compile_template, load_plan_text
from progressd.errors import DslError

EXAMPLES = sorted((Path(__file__).parent.parent / "config" / "examples").glob("*.yaml"))
EXAMPLE_TEXTS = [p.read_text() for p in EXAMPLES]
EXAMPLE_DATA = [yaml.load(t, Loader=yaml.CSafeLoader) for t in EXAMPLE_TEXTS]
VOCABULARY = [
    "version", "name", "load", "scenarios", "steps", "http", "url", "method", "think",
    "exec", "argv", "external", "key", "milestone", "weight", "when", "users", "ramp",
    "iterations", "duration", "resource_lease", "pool", "release-on", "thresholds",
    "progress", "batching", "poller", "priorities", "sampling", "mode", "rate", "window",
    "resources", "ip-port-pool", "members", "health-check", "interval", "timeout",
    "on-failure", "vars", "extract", "expect", "status", "timeline", "registers",
]  # fmt: skip
INTERESTING = [
    "1s", "250ms", "fast", "{{ vars.x }}", "{{ lease.address }}", "{{ ''.__class__ }}",
    "{% if %}", "127.0.0.1:1-3", "h:0", "milestone:x", "end", "p95 < 1s", "rate < 2",
    "tcp", "rollback", "user", 2, 1, 0, -1, 1e300, True, None, "", [], {},
]  # fmt: skip

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), _text, st.sampled_from(INTERESTING)
)
_keys = st.one_of(st.sampled_from(VOCABULARY), _text)
json_like = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=30,
)
documents = st.one_of(
    json_like,
    st.fixed_dictionaries(
        {
            "version": st.one_of(st.sampled_from([2, 1]), json_like),
            "name": _scalars,
            "load": json_like,
        },
        optional={"progress": json_like, "resources": json_like, "vars": json_like},
    ),
)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=yaml.CSafeDumper, allow_unicode=True, sort_keys=False)


def _load_or_dsl_error(text: str | bytes) -> None:
    try:
        load_plan_text(text, file="prop.yaml", cache=None)
    except DslError as exc:
        assert exc.file == "prop.yaml"
        assert exc.message


@settings(max_examples=300, deadline=None)
@given(documents)
def test_loader_arbitrary_documents_raise_only_dsl_error(doc: Any) -> None:
    _load_or_dsl_error(_dump(doc))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_loader_arbitrary_text_raises_only_dsl_error(text: str | bytes) -> None:
    _load_or_dsl_error(text)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _mutate(data: Any, path: tuple[Any, ...], op: str, new: Any) -> Any:
    if not path:
        return new
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "rename" and isinstance(parent, dict):
        parent[f"{last}_"] = parent.pop(last)
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    else:
        parent[last] = new
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(EXAMPLE_DATA),
    st.lists(
        st.tuples(
            st.integers(min_value=0),
            st.sampled_from(["replace", "delete", "rename", "duplicate"]),
            json_like,
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_loader_mutated_examples_raise_only_dsl_error(
    example: Any, mutations: list[tuple[int, str, Any]]
) -> None:
    data = copy.deepcopy(example)
    for index, op, new in mutations:
        paths = _paths(data)
        data = _mutate(data, paths[index % len(paths)], op, new)
    _load_or_dsl_error(_dump(data))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EXAMPLE_TEXTS), st.integers(min_value=0), st.integers(0, 8), _text)
def test_loader_text_edits_raise_only_dsl_error(text: str, at: int, cut: int, insert: str) -> None:
    at %= len(text)
    _load_or_dsl_error(text[:at] + insert + text[at + cut :])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_expression_compilers_raise_only_expression_error(source: str) -> None:
    from progressd.dsl import ExpressionError

    for compile_ in (compile_template, compile_condition):
        with contextlib.suppress(ExpressionError):
            compile_(source)


# -- linear growth, measured as a deterministic count of function calls ---------------------


def _calls(run: Callable[[], object]) -> int:
    count = 0

    def profile(_frame: FrameType, event: str, _arg: object) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    clear_compiled()
    sys.setprofile(profile)
    try:
        run()
    except DslError:
        pass
    finally:
        sys.setprofile(None)
    return count


def _steps_doc(n: int, error: bool = False) -> str:
    lines = ["version: 2", "name: big", "vars: {token: t}", "resources:", "  ip-port-pool:",
             "    p:", "      members:"]  # fmt: skip
    lines += [f'        - "127.0.0.1:{10000 + i}"' for i in range(n)]
    lines += ["load:", "  scenarios:", "    - name: s", "      resource_lease: {pool: p}",
              "      steps:"]  # fmt: skip
    for i in range(n):
        when = f'"{{{{ user.id > {i} }}}}"'
        url = f'"http://{{{{ lease.address }}}}/{i}/{{{{ vars.token }}}}"'
        lines.append(f"        - {{name: s{i}, when: {when}, http: {{url: {url}}}}}")
        lines.append(f"        - milestone: m{i}")
    if error:
        lines.append("        - think: forever")
    return "\n".join(lines) + "\n"


def _json_doc(n: int) -> str:
    body = {f"k{i}": [f"{{{{ user.id }}}}-{i}", i, {"x": None}] for i in range(n)}
    doc = {"version": 2, "name": "j", "load": {"scenarios": [
        {"name": "s", "steps": [{"http": {"url": "http://h:1/", "json": body}}]}]}}  # fmt: skip
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(
    "make",
    [_steps_doc, lambda n: _steps_doc(n, error=True), _json_doc],
    ids=["steps", "steps-with-error-at-end", "json-body"],
)
def test_loader_work_grows_linearly_with_document_size(make: Callable[[int], str]) -> None:
    small = _calls(lambda: load_plan_text(make(40), cache=None))
    large = _calls(lambda: load_plan_text(make(160), cache=None))
    assert large <= 4 * small * 1.25, (small, large)
