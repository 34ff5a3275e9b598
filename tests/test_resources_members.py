from __future__ import annotations

import pytest

from progressd.resources.members import Hysteresis, Member


def _member(successes: int = 1, failures: int = 1) -> Member:
    """A member whose first check passed (hysteresis applies from the second result on)."""
    member = Member("127.0.0.1:1", "127.0.0.1", 1, hysteresis=Hysteresis(successes, failures))
    assert member.record("passing") is None
    return member


def test_member_first_result_is_taken_as_it_is() -> None:
    down = Member("h:1", "h", 1, hysteresis=Hysteresis(3, 3))
    transition = down.record("critical", "refused")
    assert transition is not None and (transition.old, transition.new) == ("passing", "critical")
    assert down.record("passing") is None  # now hysteresis: 3 successes needed
    assert down.record("passing") is None
    assert down.record("passing") is not None
    degraded = Member("h:2", "h", 2, hysteresis=Hysteresis(3, 3))
    first = degraded.record("warning")
    assert first is not None and first.new == "warning"


def test_member_goes_critical_only_after_failures_before_critical() -> None:
    member = _member(failures=3)
    assert member.record("critical") is None
    assert member.record("critical") is None
    assert member.health == "passing"
    transition = member.record("critical", "refused")
    assert transition is not None
    assert (transition.old, transition.new) == ("passing", "critical")
    assert transition.cause == "critical: refused"


def test_member_success_resets_the_failure_run() -> None:
    member = _member(failures=3)
    for result in ("critical", "critical", "passing", "critical", "critical"):
        assert member.record(result) is None
    assert member.health == "passing"
    assert member.hysteresis.failures == 2


def test_member_recovers_only_after_successes_before_passing() -> None:
    member = _member(successes=2, failures=1)
    assert member.record("critical") is not None
    assert member.record("passing") is None
    assert member.health == "critical"
    transition = member.record("passing")
    assert transition is not None and transition.new == "passing"


def test_member_warning_counts_as_success_and_is_reported() -> None:
    member = _member(successes=1, failures=2)
    transition = member.record("warning", "HTTP 429")
    assert transition is not None
    assert (transition.old, transition.new) == ("passing", "warning")
    assert member.rank == 1
    assert member.record("passing") is not None
    assert member.rank == 0


def test_member_flapping_shorter_than_thresholds_never_changes_state() -> None:
    member = _member(successes=3, failures=3)
    transitions = [member.record(r) for r in ["critical", "critical", "passing"] * 20]
    assert transitions == [None] * 60
    assert member.health == "passing"


def test_member_draining_overlays_health_and_takes_no_leases() -> None:
    member = _member()
    transition = member.set_draining(True)
    assert transition is not None and (transition.old, transition.new) == ("passing", "draining")
    assert member.rank is None
    health = member.record("critical")
    assert health is not None and health.new == "critical"
    assert member.state == "draining"
    assert member.set_draining(True) is None
    undrained = member.set_draining(False)
    assert undrained is not None and undrained.new == "critical"


def test_member_capacity_limits_room() -> None:
    member = Member("h:1", "h", 1, capacity=2)
    member.holders = 1
    assert member.has_room
    member.holders = 2
    assert not member.has_room
    assert Member("h:2", "h", 2).has_room


def test_hysteresis_rejects_thresholds_below_one() -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        Hysteresis(0, 1)
