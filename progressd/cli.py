"""``progressd``: the daemon and the one-shot commands.

Only this module (and ``ctl.py``) exits the process: library code raises ``ProgressdError``
subclasses, which are mapped here to one-line messages on stderr and an exit code.

Exit codes: 0 success, 1 the work failed (a DSL check found errors, a threshold failed),
2 usage, configuration or DSL loading errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from progressd import __version__
from progressd.errors import ProgressdError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="progressd",
        description="Run long, many-user workloads and know exactly where they stand.",
    )
    parser.add_argument("--version", action="version", version=f"progressd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the daemon (systemd Type=notify)")
    serve.add_argument("--config", metavar="FILE", help="daemon configuration (TOML)")

    check = sub.add_parser("check", help="validate scenario files without running them")
    check.add_argument("files", nargs="+", metavar="SCENARIO")

    run = sub.add_parser(
        "run",
        help="run a scenario here and now (no daemon), with live progress and a summary",
        description="Run SCENARIO on an embedded event loop: live progress on a terminal, a "
        "summary at the end. Exit 0 when the run succeeded and its thresholds held, 1 when a "
        "threshold or the run failed, 2 when the scenario cannot be loaded.",
    )
    run.add_argument("scenario", metavar="SCENARIO", help="the scenario file (YAML)")
    run.add_argument("--users", type=int, metavar="N", help="override every scenario's users")
    run.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on stdout"
    )
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    match args.command:
        case "serve":
            from progressd.daemon import serve

            return serve(args.config)
        case "check":
            from progressd.dsl.check import check_files

            return check_files(args.files, out=sys.stdout, err=sys.stderr)
        case "run":
            from progressd.runs.command import run_command

            return run_command(
                args.scenario,
                users=args.users,
                json_output=args.json,
                out=sys.stdout,
                err=sys.stderr,
            )
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse guarantees one


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``progressd`` console script."""
    args = _build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ProgressdError as exc:
        print(f"progressd: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
