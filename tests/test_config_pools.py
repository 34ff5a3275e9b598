"""``[pools.NAME]`` in the daemon config: the DSL's pool shape, checked by the DSL's builder,
errors naming the config key."""

from __future__ import annotations

from pathlib import Path

import pytest

from progressd.config import parse_config
from progressd.errors import ConfigError

GOOD = """
[pools.backends]
members = ["127.0.0.1:18081-18083", "[::1]:9000"]
max-leases-per-member = 2

[pools.backends.health-check]
kind = "http"
path = "/health"
interval = "1s"
timeout = "500ms"
on-failure = "release"
"""


def test_config_pools_parse_into_the_dsl_pool_plans() -> None:
    config = parse_config(GOOD, source="p.toml")
    (plan,) = config.pool_plans()
    assert plan.name == "backends"
    assert plan.members == ("127.0.0.1:18081", "127.0.0.1:18082", "127.0.0.1:18083", "[::1]:9000")
    assert plan.max_leases_per_member == 2
    check = plan.health_check
    assert check is not None and (check.kind, check.path) == ("http", "/health")
    assert (check.interval_s, check.timeout_s, check.on_failure) == (1.0, 0.5, "release")


def test_config_pools_default_to_none() -> None:
    assert parse_config("", source="p.toml").pool_plans() == ()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('members = ["x"]', r'pools\.b\.members\[0\]: expected "host:port" .* got "x"'),
        ("members = []", r"pools\.b\.members: a pool needs at least one member"),
        ('members = "127.0.0.1:1"', r"pools\.b\.members: expected an array, got '127.0.0.1:1'"),
        (
            'members = ["127.0.0.1:1"]\ncapacity = 3',
            r"pools\.b\.capacity: unknown key; Valid keys here: health-check, max-leases-per",
        ),
        (
            'members = ["127.0.0.1:1"]\nmax-leases-per-member = 0',
            r"pools\.b\.max-leases-per-member: expected an integer >= 1, got 0",
        ),
        (
            'members = ["127.0.0.1:1"]\nhealth-check = {kinds = "tcp"}',
            r'pools\.b\.health-check\.kinds: unknown key; did you mean "kind"\?',
        ),
        (
            'members = ["127.0.0.1:1"]\nhealth-check = {kind = "ftp"}',
            r'pools\.b\.health-check\.kind: expected one of "tcp", "http", "exec", got .ftp.',
        ),
        (
            'members = ["127.0.0.1:1"]\nhealth-check = {interval = "fast"}',
            r"pools\.b\.health-check\.interval: expected a duration .* got .fast.",
        ),
        (
            'members = ["127.0.0.1:1"]\nhealth-check = {interval = "1s", timeout = "2s"}',
            r"pools\.b\.health-check\.timeout: the timeout must be above 0s and at most",
        ),
    ],
)
def test_config_pools_bad_values_name_the_key(body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(f"[pools.b]\n{body}\n", source="p.toml")
    assert "(p.toml)" in str(info.value)


def test_config_pools_commented_example_parses_when_uncommented() -> None:
    text = (Path(__file__).parent.parent / "config" / "progressd.toml").read_text()
    lines = text.splitlines()
    start = lines.index("# [pools.backends]")
    example = "\n".join(line.removeprefix("# ") for line in lines[start : start + 4])
    (plan,) = parse_config(example, source="example").pool_plans()
    assert plan.name == "backends" and len(plan.members) == 3
