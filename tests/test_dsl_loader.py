from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from progressd.dsl import PlanCache, load_plan, load_plan_text
from progressd.dsl import loader as loader_module
from progressd.dsl.wbs import Plan
from progressd.errors import DslError

DOC = """\
version: 2
name: t
load:
  scenarios:
    - name: s
      users: 4
      steps:
        - http: {url: "http://{{ lease.address }}/"}
        - milestone: done
"""

V1 = """\
name: legacy
scenarios:
  - name: old
    users: 2
    iterations: 5
    steps:
      - name: home
        http: {url: "http://127.0.0.1:18081/"}
        expect: {status: 200}
      - think: 1s
"""


def test_load_plan_text_same_bytes_hit_the_cache_without_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = PlanCache()
    first = load_plan_text(DOC, file="a.yaml", cache=cache)

    def no_parse(*_args: object) -> Plan:
        raise AssertionError("parsed again")

    monkeypatch.setattr(loader_module, "_parse", no_parse)
    assert load_plan_text(DOC.encode(), file="b.yaml", cache=cache) is first
    stats = cache.statistics()
    assert (stats.hits, stats.misses, stats.size) == (1, 1, 1)


def test_cache_evicts_least_recently_used() -> None:
    cache = PlanCache(maxsize=2)
    docs = [DOC.replace("name: t", f"name: t{i}") for i in range(3)]
    plans = [load_plan_text(d, cache=cache) for d in docs]
    assert load_plan_text(docs[2], cache=cache) is plans[2]
    assert load_plan_text(docs[0], cache=cache) is not plans[0]  # evicted, parsed again
    assert cache.statistics().size == 2


def test_plan_source_hash_is_sha256_of_bytes() -> None:
    import hashlib

    plan = load_plan_text(DOC, cache=None)
    assert plan.source_hash == hashlib.sha256(DOC.encode()).hexdigest()


def test_plan_round_trips_through_msgspec() -> None:
    plan = load_plan_text(DOC, cache=None)
    for codec in (msgspec.json, msgspec.msgpack):
        assert codec.decode(codec.encode(plan), type=Plan) == plan


def test_plan_is_immutable() -> None:
    plan = load_plan_text(DOC, cache=None)
    with pytest.raises(AttributeError):
        plan.name = "other"  # type: ignore[misc]


def test_v1_document_is_lifted_and_reports_version_1() -> None:
    plan = load_plan_text(V1, cache=None)
    assert plan.version == 1
    scenario = plan.scenario("old")
    assert (scenario.users, scenario.iterations, scenario.work_per_user) == (2, 5, 10)
    assert [s.kind for s in scenario.steps] == ["http", "think"]
    assert scenario.lease is None
    assert scenario.milestones == ()
    assert plan.progress.batching.max_batch_size == 512


def test_explicit_version_1_is_read_as_v1() -> None:
    assert load_plan_text("version: 1\n" + V1, cache=None).version == 1


def test_v2_only_field_in_v1_document_is_unknown() -> None:
    with pytest.raises(DslError) as info:
        load_plan_text(V1 + "    resource_lease: {pool: p}\n", file="old.yaml", cache=None)
    assert info.value.format() == (
        'old.yaml:11:5: scenarios[0].resource_lease: unknown field "resource_lease"; '
        "expected one of: duration, iterations, name, ramp, steps, thresholds, users"
    )


def test_load_plan_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DslError, match="cannot read the file: No such file"):
        load_plan(str(tmp_path / "nope.yaml"))


def test_load_plan_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 2\nname: caf\xe9\n")
    with pytest.raises(DslError, match="not UTF-8") as info:
        load_plan(str(path), cache=None)
    assert info.value.line == 2


def test_alias_bomb_is_rejected() -> None:
    lines = ["version: 2", "name: t", "vars:", "  a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        prev = "a" if i == 1 else f"b{i - 1}"
        lines.append(f"  b{i}: &b{i} [" + ", ".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(DslError, match="expands to more than") as info:
        load_plan_text("\n".join(lines) + "\n", cache=None)
    assert info.value.line == 5


def test_aliases_and_merge_keys_work_and_locate() -> None:
    doc = (
        "version: 2\nname: t\nload:\n  scenarios:\n"
        "    - &base\n      name: a\n      users: 2\n      steps: [{think: 1s}]\n"
        "    - <<: *base\n      name: b\n      ramp: never\n"
    )
    with pytest.raises(DslError) as info:
        load_plan_text(doc, cache=None)
    assert (info.value.line, info.value.column, info.value.doc_path) == (
        11,
        13,
        "load.scenarios[1].ramp",
    )
    fixed = load_plan_text(doc.replace("never", "5s"), cache=None)
    assert [s.users for s in fixed.scenarios] == [2, 2]


def test_duration_scenario_has_no_work_total() -> None:
    plan = load_plan_text(DOC.replace("users: 4", "users: 4\n      duration: 2m"), cache=None)
    scenario = plan.scenarios[0]
    assert (scenario.iterations, scenario.duration_s) == (None, 120.0)
    assert scenario.work_per_user is None
    assert plan.total_work is None
