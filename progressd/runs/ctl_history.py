"""``progressctl history [--state S] [--since T] [--limit N]``: runs from the daemon's store.

Asks ``GET /v1/runs?state=&since=&limit=`` (``runs/history.py``): every run the store holds,
newest first, merged with the live ones. ``--since`` takes epoch seconds, an ISO 8601 time or a
duration ago (``1h``); the daemon parses it, so errors name the same forms everywhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import urlencode

from progressd.client import ControlClient
from progressd.runs.ctl import Spec
from progressd.runs.history import HISTORY_STATES, HistoryRecord, RunHistory
from progressd.runs.table import print_json, print_table, seconds

__all__ = ["SPECS"]


def _history_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", choices=sorted(HISTORY_STATES), help="only runs in this state")
    parser.add_argument(
        "--since", metavar="T", help="runs not finished before T: epoch seconds, ISO 8601, or 1h"
    )
    parser.add_argument("--limit", type=int, default=100, help="at most N runs (default 100)")


async def _history(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
    query = {"limit": str(args.limit)}
    if args.state:
        query["state"] = args.state
    if args.since:
        query["since"] = args.since
    reply = await client.get(f"/v1/runs?{urlencode(query)}", RunHistory)
    if args.json:
        print_json(reply, out)
        return 0
    if not reply.runs:
        out.write("no runs\n")
        return 0
    header = ("RUN", "NAME", "STATE", "CREATED", "FINISHED", "USERS", "PROGRESS", "DURATION")
    print_table(header, [_row(r) for r in reply.runs], out, right=frozenset({5, 6, 7}))
    return 0


def _row(record: HistoryRecord) -> tuple[str, ...]:
    s = record.summary
    state = record.state + (" (live)" if record.live else "")
    return (
        record.run,
        record.name,
        state,
        _when(record.created_at),
        "-" if record.finished_at is None else _when(record.finished_at),
        "-" if s is None else f"{s.users:,}",
        "-" if s is None else f"{s.progress:.1%}",
        "-" if s is None else seconds(s.duration_s),
    )


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


SPECS: Sequence[Spec] = (
    (
        "history",
        "runs from the daemon's store (finished, interrupted, live)",
        _history,
        _history_args,
    ),
)
