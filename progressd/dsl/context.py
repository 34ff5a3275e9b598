"""What a ``{{ ... }}`` expression may read, and how the runner hands those values over.

Design note
-----------
A render or evaluation context is a plain mapping from a *root* name to an object that
supports ``obj[key]`` (a dict, a ``Mapping``, or a cheap row view the runner builds)::

    ctx = {"vars": {"token": "abc"}, "lease": {"address": "127.0.0.1:18081"},
           "user": {"id": 7, "iteration": 0}}

Field lookups are item lookups: ``vars.token`` and ``vars["token"]`` both read
``ctx["vars"]["token"]``, never a Python attribute. That is what lets a template whose
placeholders are plain lookups render with one ``str.format_map`` call (see ``templates.py``)
and what keeps the sandbox small: no attribute of any object is reachable from a template.
Roots the runner has no value for may be left out of the mapping; a condition reading them
sees an undefined (false) value, a template rendering them raises ``RenderError``.

Allowed roots (anything else is a load-time error):

``vars``      document ``vars`` and values extracted by earlier steps (names are open)
``lease``     the user's leased resource: ``address`` ("host:port"), ``host``, ``port``, ``pool``
``user``      the virtual user: ``id``, ``index``, ``iteration``
``progress``  the user's progress: ``ratio``, ``done``, ``total``, ``milestone``, ``step``
``run``       the run: ``id``, ``name``, ``elapsed``
``scenario``  the scenario: ``name``, ``users``, ``iterations``

``env`` (the daemon's environment) is deliberately *not* a root: a scenario file must not
be able to copy the daemon's secrets into requests or logs. Put such values in ``vars``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from progressd.errors import ProgressdError

Context: TypeAlias = Mapping[str, Any]
"""Root name -> an object indexed by field name (``ctx["lease"]["address"]``)."""

ROOT_FIELDS: dict[str, frozenset[str] | None] = {
    "vars": None,
    "lease": frozenset({"address", "host", "port", "pool"}),
    "user": frozenset({"id", "index", "iteration"}),
    "progress": frozenset({"ratio", "done", "total", "milestone", "step"}),
    "run": frozenset({"id", "name", "elapsed"}),
    "scenario": frozenset({"name", "users", "iterations"}),
}
"""Allowed roots and, where the shape is fixed, their fields (``None``: open names)."""

ROOTS = tuple(ROOT_FIELDS)


class RenderError(ProgressdError):
    """Raised when a template reads a field the context does not hold (at run time, per user)."""


__all__ = ["ROOTS", "ROOT_FIELDS", "Context", "RenderError"]
