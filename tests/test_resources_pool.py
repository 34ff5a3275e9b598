from __future__ import annotations

import pytest

from progressd.resources.pool import Pool, parse_members


def test_parse_members_expands_lists_and_ranges() -> None:
    assert parse_members("127.0.0.1:18081") == [("127.0.0.1", 18081)]
    assert parse_members(["a:1", "127.0.0.1:18081-18083", "[::1]:80"]) == [
        ("a", 1),
        ("127.0.0.1", 18081),
        ("127.0.0.1", 18082),
        ("127.0.0.1", 18083),
        ("::1", 80),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("localhost", 'expected "host:port"'),
        ("h:0", "ports must be 1..65535"),
        ("h:70000", "ports must be 1..65535"),
        ("h:20-10", "first <= last"),
        (["h:1", "h:1-2"], "h:1 is listed twice"),
        ([], "at least one member"),
    ],
)
def test_parse_members_rejects_bad_members(spec: str | list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_members(spec)


def test_pool_select_prefers_least_loaded_round_robin() -> None:
    pool = Pool("p", "h:1-3")
    picked = []
    for _ in range(6):
        member = pool.select()
        assert member is not None
        member.holders += 1
        pool.reindex(member)
        picked.append(member.port)
    assert picked == [1, 2, 3, 1, 2, 3]


def test_pool_select_prefers_passing_over_less_loaded_warning() -> None:
    pool = Pool("p", ["h:1", "h:2"])
    busy = pool.member("h:1")
    busy.holders = 5
    pool.reindex(busy)
    idle = pool.member("h:2")
    idle.record("warning")
    pool.reindex(idle)
    assert pool.select() is busy
    busy.record("critical")
    pool.reindex(busy)
    assert pool.select() is idle


def test_pool_select_skips_full_critical_and_draining_members() -> None:
    pool = Pool("p", "h:1-3", capacity=1)
    full, sick, drained = (pool.member(f"h:{port}") for port in (1, 2, 3))
    full.holders = 1
    sick.record("critical")
    drained.set_draining(True)
    for member in (full, sick, drained):
        pool.reindex(member)
    assert pool.select() is None
    full.holders = 0
    pool.reindex(full)
    assert pool.select() is full


def test_pool_counts_states_and_holders() -> None:
    pool = Pool("p", "h:1-4")
    pool.member("h:1").record("critical")
    pool.member("h:2").set_draining(True)
    pool.member("h:3").holders = 7
    assert pool.count_states() == {"passing": 2, "warning": 0, "critical": 1, "draining": 1}
    assert pool.count_holders() == 7


def test_pool_rejects_capacity_below_one() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        Pool("p", "h:1", capacity=0)
