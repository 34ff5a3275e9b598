"""The ``make run`` demo points the example scenario at the backends it started."""

from __future__ import annotations

from progressd import demo
from progressd.runs.backends import running_backends


async def test_demo_scenario_uses_the_backends_it_started() -> None:
    async with running_backends((0, 0, 0)) as backends:
        moved = demo._scenario(backends, moved=True)
    assert moved.pools[0].members == tuple(b.address for b in backends)
    assert moved.scenarios[0].users == 1000
    example = demo._scenario(backends, moved=False)
    assert example.pools[0].members == ("127.0.0.1:18081", "127.0.0.1:18082", "127.0.0.1:18083")
