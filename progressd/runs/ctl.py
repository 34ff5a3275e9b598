"""``progressctl`` commands for runs: submit, runs, show, watch, pause, resume, cancel, report,
rollback.

``ctl.py`` turns ``SPECS`` (name, help, run, add_arguments) into its ``Command`` table, so this
module needs nothing from it. Human output is compact aligned tables; ``--json`` prints the
API's own messages. ``watch`` draws the same live bars as ``progressd run`` (``live.py``) from
the daemon's event stream, plain lines when the output is not a terminal, then the summary; it
exits like ``progressd run``: 0 when the run succeeded and its thresholds held, 1 otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO

from rich.console import Console
from rich.live import Live

from progressd.client import ControlClient
from progressd.errors import ControlError
from progressd.reports import DeliveryCount, Report, ReportBatch
from progressd.runs.live import plain_line, render_progress
from progressd.runs.messages import (
    EndEvent,
    MilestoneEvent,
    ProgressEvent,
    RollbackEvent,
    RollbackReply,
    RollbackRequest,
    RunEvent,
    RunList,
    RunStateReply,
    StateEvent,
    SubmitReply,
    SubmitRequest,
    decode_event,
)
from progressd.runs.table import print_json, print_table, seconds
from progressd.summary import RunSummary, render_summary

__all__ = ["SPECS"]

Runner = Callable[[ControlClient, argparse.Namespace, TextIO], Awaitable[int]]
Spec = tuple[str, str, Runner, Callable[[argparse.ArgumentParser], None]]


def _run_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="the run id (see `progressctl runs`)")


# -- submit / runs / show -------------------------------------------------------------------


def _submit_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the scenario file (read here, sent as text)")
    parser.add_argument("--users", type=int, metavar="N", help="override every scenario's users")
    parser.add_argument("--watch", action="store_true", help="then watch it to its end")


def _read_scenario(path: str) -> str:
    """The scenario file's text (a small file, read before the loop has anything to do).

    Raises:
        ControlError: the file cannot be read (exit 2, like a usage error).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise ControlError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ControlError(f"cannot read {path}: not UTF-8 text ({exc.reason})") from None


async def _submit(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
    body = SubmitRequest(text=_read_scenario(args.file), file=args.file, users=args.users)
    reply = await client.request("POST", "/v1/runs", reply=SubmitReply, body=body)
    if args.json:
        print_json(reply, out)
    else:
        out.write(f"submitted run {reply.run}\n")
    if not args.watch:
        return 0
    out.flush()
    return await _follow(client, reply.run, args.json, out)


async def _runs(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
    reply = await client.get("/v1/runs", RunList)
    if args.json:
        print_json(reply, out)
        return 0
    if not reply.runs:
        out.write("no runs\n")
        return 0
    header = ("RUN", "NAME", "STATE", "USERS", "PROGRESS", "REQUESTS", "ERRORS", "DURATION", "ETA")
    rows = [_run_row(summary) for summary in reply.runs]
    print_table(header, rows, out, right=frozenset({3, 4, 5, 6, 7, 8}))
    return 0


def _run_row(s: RunSummary) -> tuple[str, ...]:
    eta = "-" if s.eta_s is None else seconds(s.eta_s)
    return (
        s.run,
        s.name or "-",
        s.state,
        f"{s.users:,}",
        f"{s.progress:.1%}",
        f"{s.requests:,}",
        f"{s.errors:,}",
        seconds(s.duration_s),
        eta,
    )


async def _show(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
    summary = await client.get(f"/v1/runs/{args.run}", RunSummary)
    if args.json:
        print_json(summary, out)
    else:
        Console(file=out, highlight=False).print(render_summary(summary))
    return 0


# -- watch ------------------------------------------------------------------------------------


async def _watch(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
    return await _follow(client, args.run, args.json, out)


async def _follow(client: ControlClient, run: str, json_output: bool, out: TextIO) -> int:
    console = Console(file=out, highlight=False)
    interval = 0.25 if console.is_terminal else 5.0
    lines = client.stream_lines("GET", f"/v1/runs/{run}/events?interval={interval}")
    end: EndEvent | None = None
    if json_output:
        async for line in lines:
            out.write(line.decode().rstrip("\n") + "\n")
            end = _as_end(_decode(line)) or end
    elif console.is_terminal:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            async for line in lines:
                event = _decode(line)
                if isinstance(event, ProgressEvent):
                    live.update(render_progress(event.progress), refresh=True)
                end = _as_end(event) or end
    else:
        async for line in lines:
            event = _decode(line)
            text = _plain(event)
            if text is not None:
                console.print(text, highlight=False, soft_wrap=True)
            end = _as_end(event) or end
    if end is None:
        raise ControlError(f"the event stream of run {run} ended before the run did")
    if not json_output:
        console.print(render_summary(end.summary))
    return 0 if end.summary.passed else 1


def _decode(line: bytes) -> RunEvent:
    try:
        return decode_event(line)
    except ValueError as exc:
        raise ControlError(f"unexpected line in the event stream: {exc}") from None


def _as_end(event: RunEvent) -> EndEvent | None:
    return event if isinstance(event, EndEvent) else None


def _plain(event: RunEvent) -> str | None:
    match event:
        case ProgressEvent(progress=progress):
            return plain_line(progress)
        case StateEvent(state=state, reason=reason, elapsed_s=at):
            return f"[{at:7.1f}s] state {state}" + (f" ({reason})" if reason else "")
        case MilestoneEvent(milestone=name, users=users, elapsed_s=at):
            return f"[{at:7.1f}s] milestone {name}: +{users} users"
        case RollbackEvent(reason=reason, users=users, undone=undone, elapsed_s=at):
            return f"[{at:7.1f}s] rollback ({reason}): {users} users, {undone} work undone"
    return None


# -- steering -------------------------------------------------------------------------------


def _steer(verb: str, done: str) -> Runner:
    async def run(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
        reply = await client.request("POST", f"/v1/runs/{args.run}/{verb}", reply=RunStateReply)
        if args.json:
            print_json(reply, out)
        else:
            out.write(f"run {reply.run} {done} (now {reply.state})\n")
        return 0

    return run


def _report_args(parser: argparse.ArgumentParser) -> None:
    _run_arg(parser)
    parser.add_argument("key", metavar="KEY", help="the key the external step waits on")
    parser.add_argument("--user", type=int, metavar="N", help="for user N only (default: all)")
    parser.add_argument("--done", type=float, metavar="N", help="progress so far (with --total)")
    parser.add_argument("--total", type=float, metavar="M", help="the whole (with --done)")


async def _report(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
    try:
        report = Report(key=args.key, user=args.user, done=args.done, total=args.total)
    except ValueError as exc:
        raise ControlError(f"report: {exc}") from None
    body = ReportBatch(reports=[report])
    path = f"/v1/runs/{args.run}/reports"
    reply = await client.request("POST", path, reply=DeliveryCount, body=body)
    if args.json:
        print_json(reply, out)
    else:
        out.write(f"report {args.key}: {reply.matched} delivered, {reply.kept} kept\n")
    return 0


def _rollback_args(parser: argparse.ArgumentParser) -> None:
    _run_arg(parser)
    parser.add_argument("--user", type=int, metavar="N", help="only user N (default: every user)")


async def _rollback(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
    body = RollbackRequest(user=args.user)
    path = f"/v1/runs/{args.run}/rollback"
    reply = await client.request("POST", path, reply=RollbackReply, body=body)
    if args.json:
        print_json(reply, out)
    else:
        out.write(f"run {reply.run}: {reply.users} users rolled back to their last milestone\n")
    return 0


SPECS: Sequence[Spec] = (
    ("submit", "submit a scenario file to the daemon", _submit, _submit_args),
    ("runs", "list the runs the daemon holds", _runs, lambda parser: None),
    ("show", "one run's summary", _show, _run_arg),
    ("watch", "follow a run's progress to its end", _watch, _run_arg),
    ("pause", "pause a run", _steer("pause", "paused"), _run_arg),
    ("resume", "resume a paused run", _steer("resume", "resumed"), _run_arg),
    ("cancel", "cancel a run", _steer("cancel", "cancelled"), _run_arg),
    ("report", "send an external progress report to a run", _report, _report_args),
    ("rollback", "roll users back to their last milestone", _rollback, _rollback_args),
)
