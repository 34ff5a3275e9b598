"""``progressd check FILE...``: validate scenario files without running them."""

from __future__ import annotations

from typing import TextIO

from progressd.dsl.loader import load_plan
from progressd.dsl.wbs import Plan
from progressd.errors import DslError


def summarize(plan: Plan) -> str:
    """One line: version read, scenarios, users, steps and milestones."""
    scenarios = len(plan.scenarios)
    return (
        f"ok: version {plan.version}, {_count(scenarios, 'scenario')}, "
        f"{_count(plan.total_users, 'user')}, {_count(plan.total_steps, 'step')}, "
        f"{_count(plan.total_milestones, 'milestone')}"
    )


def check_files(files: list[str], *, out: TextIO, err: TextIO) -> int:
    """Check every file; errors as ``file:line:col: message`` on ``err``.

    Returns 1 when any file has an error, else 0 (one summary line per file on ``out``).
    """
    failed = False
    for file in files:
        try:
            plan = load_plan(file)
        except DslError as exc:
            failed = True
            print(exc.format(), file=err)
            continue
        print(f"{file}: {summarize(plan)}", file=out)
    return 1 if failed else 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


__all__ = ["check_files", "summarize"]
