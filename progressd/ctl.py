"""``progressctl``: talk to a running progressd over its control socket.

Subcommands live in one table (``COMMANDS``): each names its arguments and an async function
``run(client, args, out) -> exit code``. Adding ``runs``, ``submit``, ``watch``... is one more
entry. The socket path comes from ``--socket``, then ``$PROGRESSD_SOCKET``, then the daemon
config (``--config FILE``, else the built-in default ``./var/progressd.sock``).

Exit codes: 0 success, 1 the daemon answered with an error, 2 usage errors or the daemon cannot
be reached. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from progressd import __version__
from progressd.api import StatusReply
from progressd.client import ControlClient
from progressd.config import load_config
from progressd.errors import ControlError, ProgressdError
from progressd.runs.ctl import SPECS as RUN_SPECS
from progressd.runs.ctl_history import SPECS as HISTORY_SPECS
from progressd.runs.ctl_pools import SPECS as POOL_SPECS
from progressd.runs.table import print_json
from progressd.units import format_duration

__all__ = ["COMMANDS", "Command", "main", "resolve_socket"]

Runner = Callable[[ControlClient, argparse.Namespace, TextIO], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class Command:
    """One ``progressctl`` subcommand."""

    name: str
    help: str
    run: Runner
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None


async def _status(client: ControlClient, args: argparse.Namespace, out: TextIO) -> int:
    reply = await client.get("/v1/status", StatusReply)
    if args.json:
        print_json(reply, out)
        return 0
    rows = [
        ("uptime", format_duration(round(reply.uptime_seconds, 1))),
        ("loop lag", f"{_ms(reply.loop_lag_seconds)} (max {_ms(reply.loop_lag_max_seconds)})"),
        ("runs", str(reply.runs)),
        ("socket", reply.socket),
        ("metrics", f"http://{reply.metrics}/metrics" if reply.metrics else "off"),
        ("config", reply.config or "built-in defaults"),
    ]
    out.write(f"progressd {reply.version} is running (pid {reply.pid})\n")
    out.writelines(f"  {name:<9} {value}\n" for name, value in rows)
    return 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms"


COMMANDS: list[Command] = [
    Command("status", "is the daemon running, and how is it doing", _status),
    *(Command(*spec) for spec in RUN_SPECS),
    *(Command(*spec) for spec in POOL_SPECS),
    *(Command(*spec) for spec in HISTORY_SPECS),
]


def resolve_socket(
    flag: str | None, environ: Mapping[str, str], config_path: str | None = None
) -> str:
    """The socket to talk to: ``--socket``, then ``$PROGRESSD_SOCKET``, then the config.

    Raises:
        ConfigError: ``config_path`` is given and invalid.
    """
    if flag:
        return flag
    if environ.get("PROGRESSD_SOCKET"):
        return environ["PROGRESSD_SOCKET"]
    return load_config(config_path).control.socket


# ``progressctl status --json`` works as well as ``progressctl --json status``: subcommands
# accept the common options too, without overriding them when they are absent.
_late = argparse.ArgumentParser(add_help=False)
_late.add_argument("--socket", metavar="PATH", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
_late.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="progressctl", description="Control a running progressd over its Unix socket."
    )
    parser.add_argument("--version", action="version", version=f"progressctl {__version__}")
    parser.add_argument("--socket", metavar="PATH", help="control socket ($PROGRESSD_SOCKET)")
    parser.add_argument("--config", metavar="FILE", help="read the socket path from this config")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="per-request timeout"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_arguments(sub.add_parser(command.name, help=command.help, parents=[_late]))
    return parser


async def _run(command: Command, args: argparse.Namespace, socket_path: str, out: TextIO) -> int:
    async with ControlClient(socket_path, timeout=args.timeout) as client:
        return await command.run(client, args, out)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Entry point of the ``progressctl`` console script."""
    args = build_parser().parse_args(argv)
    command = next(c for c in COMMANDS if c.name == args.command)
    try:
        socket_path = resolve_socket(args.socket, os.environ, args.config)
        return asyncio.run(_run(command, args, socket_path, out or sys.stdout))
    except ControlError as exc:
        print(f"progressctl: {exc}", file=sys.stderr)
        return 2 if exc.status is None else 1
    except ProgressdError as exc:
        print(f"progressctl: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
