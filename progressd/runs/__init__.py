"""Runs: a plan executing with progress, ETA, thresholds and a summary (``run.py``), the live
terminal view (``live.py``), the ``progressd run`` command (``command.py``) and small local
backends for the demo and tests (``backends.py``).

The names below are imported lazily (PEP 562): ``progressctl`` imports ``runs.messages`` and
``runs.ctl`` without paying for the whole run core (dsl, http, runner) it never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from progressd.runs.figures import Figures, ScenarioFigures, run_summary
    from progressd.runs.plans import with_users
    from progressd.runs.progress import RunProgress, ScenarioProgress
    from progressd.runs.run import Run, RunStatus

__all__ = [
    "Figures",
    "Run",
    "RunProgress",
    "RunStatus",
    "ScenarioFigures",
    "ScenarioProgress",
    "run_summary",
    "with_users",
]

_HOMES = {
    "Figures": "figures",
    "ScenarioFigures": "figures",
    "run_summary": "figures",
    "with_users": "plans",
    "RunProgress": "progress",
    "ScenarioProgress": "progress",
    "Run": "run",
    "RunStatus": "run",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'progressd.runs' has no attribute {name!r}")
    return getattr(importlib.import_module(f"progressd.runs.{home}"), name)
