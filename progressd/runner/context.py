"""The evaluation context of one user: the roots of ``{{ ... }}`` built on demand.

``RowContext(runner, row)`` is a read-only ``Mapping`` from root name (``vars``, ``user``,
``progress``, ``run``, ``scenario``, ``lease``) to a dict. A root is built only when an
expression reads it, so a guard on ``vars.token`` never computes the user's progress ratio.
``lease`` is present only while the row holds a lease (a guard reading it is then false).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from progressd.workbook import Field

if TYPE_CHECKING:
    from progressd.runner.core import Runner

__all__ = ["RowContext"]

_ROOTS = ("vars", "user", "progress", "run", "scenario", "lease")


class RowContext(Mapping[str, Any]):
    """The context of ``row`` at the moment a root is first read."""

    __slots__ = ("_built", "_row", "_runner")

    def __init__(self, runner: Runner, row: int) -> None:
        self._runner = runner
        self._row = row
        self._built: dict[str, Any] = {}

    def __getitem__(self, root: str) -> Any:
        built = self._built
        if root not in built:
            value = self._build(root)
            if value is None:
                raise KeyError(root)
            built[root] = value
        return built[root]

    def __iter__(self) -> Iterator[str]:
        return (root for root in _ROOTS if root != "lease" or self._lease() is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def _lease(self) -> Mapping[str, Any] | None:
        return self._runner.lease_of(self._row)

    def _build(self, root: str) -> Any:
        runner, row = self._runner, self._row
        wb = runner.workbook
        if root == "vars":  # first: the root templates read most
            own = wb.get_cold(row, Field.VARS)
            return {**runner.plan.vars, **own} if isinstance(own, Mapping) else runner.plan.vars
        sc = runner._scenario_of(row)
        if root == "user":
            index = row - sc.first_row
            return {"id": row, "index": index, "iteration": int(wb.get(row, Field.ITERATION))}
        if root == "progress":
            return _progress(runner, row)
        if root == "run":
            elapsed = runner.poller.now - runner.started_at
            return {"id": runner.run_id, "name": runner.plan.name, "elapsed": elapsed}
        if root == "scenario":
            plan = sc.plan
            return {"name": plan.name, "users": plan.users, "iterations": plan.iterations}
        if root == "lease":
            lease = self._lease()
            return None if lease is None else dict(lease)
        return None


def _progress(runner: Runner, row: int) -> dict[str, Any]:
    wb = runner.workbook
    done = int(wb.get(row, Field.DONE))
    total = runner._scenario_of(row).work_total
    milestone = int(wb.get(row, Field.MILESTONE))
    return {
        "done": done,
        "total": total,
        "ratio": min(1.0, done / total) if total else 0.0,
        "milestone": None if milestone < 0 else wb.milestones[milestone],
        "step": int(wb.get(row, Field.STEP)),
    }
