"""The program an ``exec`` step runs: start it, read its output, report how it ended.

Design note. A step in flight must not own a task (users are rows, not tasks), so the program's
protocol is a ``SubprocessProtocol``: the loop calls it back when output arrives and when the
process exits, and it calls ``on_done(ExecResult)`` exactly once. Only the spawn itself is awaited
(``loop.subprocess_exec`` is a coroutine); that await is short and ends before the program runs.

* The child starts in a new session, so it leads its own process group: a timeout or a cancel
  signals the whole group (``SIGTERM``, then ``SIGKILL`` after ``kill_grace_s``), grandchildren
  included.
* Stdout is read line by line for ``progress: N/M``; of the lines in one read only the last
  counts, so a chatty program costs one callback per read, not per line. Other stdout is
  discarded, unless ``stdout_max_bytes`` asks to keep it (the exec step does for ``extract``):
  the kept stdout is the program's output less its progress lines, cut at that limit with
  ``stdout_truncated`` set. Stderr keeps only its last ``stderr_tail_bytes`` for the error text.
* The result is final when the process has exited and its pipes are closed. A grandchild that
  keeps a pipe open cannot hold the step: ``pipe_linger_s`` after the exit the step finishes and
  the group is killed.

Apart from ``exec.py`` (the runner's executor for ``exec`` steps, which re-exports these names)
because this knows nothing of the runner, the DSL or metrics: it takes an ``ExecSpec`` and
calls back with an ``ExecResult``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Callable
from typing import Literal

import msgspec

from progressd.errors import ProgressdError
from progressd.units import format_duration

__all__ = [
    "ExecHandle",
    "ExecOutcome",
    "ExecResult",
    "ExecSpec",
    "ExecStartError",
    "ProgressCallback",
    "start_exec",
]

ExecOutcome = Literal["ok", "exit-code", "timeout", "cancelled"]
ProgressCallback = Callable[[float, float], None]

_PROGRESS = re.compile(rb"\s*progress:\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*")
_MAX_LINE = 64 * 1024


class ExecStartError(ProgressdError):
    """Raised by ``start_exec`` when the program cannot be started (not found, not executable,
    bad working directory). The message names the program and what to check."""


class ExecSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to run. ``env`` is added to the daemon's environment unless ``inherit_env`` is off."""

    argv: tuple[str, ...]
    env: dict[str, str] = {}
    inherit_env: bool = True
    cwd: str | None = None
    timeout_s: float | None = None
    expect_exit: tuple[int, ...] = (0,)
    kill_grace_s: float = 1.0
    pipe_linger_s: float = 1.0
    stderr_tail_bytes: int = 4096
    stdout_max_bytes: int = 0
    """Keep up to this many bytes of stdout (progress lines excluded) in ``ExecResult.stdout``;
    0 discards it."""

    def __post_init__(self) -> None:
        for name in ("timeout_s", "kill_grace_s", "pipe_linger_s"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(
                    f"exec: {name} must be a non-negative number of seconds, got {value!r}"
                )
        for name in ("stderr_tail_bytes", "stdout_max_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"exec: {name} cannot be negative, got {getattr(self, name)}")


class ExecResult(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How a step's program ended. ``exit_code`` is negative for a signal (``-9``: SIGKILL),
    ``None`` if it never reported one; ``message`` is the error text, empty when ``ok``.
    ``stdout`` is the kept stdout (``ExecSpec.stdout_max_bytes`` above 0, else ``None``), cut
    at that limit when ``stdout_truncated``."""

    outcome: ExecOutcome
    exit_code: int | None
    duration_s: float
    stderr_tail: str
    progress: tuple[float, float] | None
    message: str
    stdout: bytes | None = None
    stdout_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class ExecHandle:
    """A running ``exec`` step. ``cancel()`` kills its process group and reports ``cancelled``."""

    __slots__ = ("_protocol", "pid")

    def __init__(self, protocol: _ExecProtocol, pid: int) -> None:
        self._protocol = protocol
        self.pid = pid

    @property
    def done(self) -> bool:
        return self._protocol.finished

    def cancel(self) -> None:
        self._protocol.stop("cancelled")


async def start_exec(
    spec: ExecSpec,
    *,
    on_done: Callable[[ExecResult], None],
    on_progress: ProgressCallback | None = None,
) -> ExecHandle:
    """Start ``spec.argv``; ``on_done`` is called once when it has ended, from the loop.

    Raises:
        ExecStartError: when the program cannot be started.
        ValueError: when ``argv`` is empty.
    """
    if not spec.argv:
        raise ValueError("exec: argv is empty; give the program and its arguments")
    loop = asyncio.get_running_loop()
    protocol = _ExecProtocol(spec, loop, on_done, on_progress)
    try:
        transport, _ = await loop.subprocess_exec(
            lambda: protocol,
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            env=_environment(spec),
            cwd=spec.cwd,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        raise ExecStartError(_start_failure(spec, exc)) from exc
    protocol.started(transport)
    return ExecHandle(protocol, transport.get_pid())


class _ExecProtocol(asyncio.SubprocessProtocol):
    def __init__(
        self,
        spec: ExecSpec,
        loop: asyncio.AbstractEventLoop,
        on_done: Callable[[ExecResult], None],
        on_progress: ProgressCallback | None,
    ) -> None:
        self._spec = spec
        self._loop = loop
        self._on_done = on_done
        self._on_progress = on_progress
        self._transport: asyncio.SubprocessTransport | None = None
        self._open_pipes = {1, 2}
        self._exited = False
        self._stop_reason: ExecOutcome | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._line = bytearray()
        self._skipping_line = False
        self._stderr = bytearray()
        self._stdout = bytearray()
        self._stdout_truncated = False
        self._progress: tuple[float, float] | None = None
        self._started = time.monotonic()
        self.finished = False

    def started(self, transport: asyncio.SubprocessTransport) -> None:
        self._transport = transport
        self._started = time.monotonic()
        if self._spec.timeout_s is not None:
            self._timers.append(self._loop.call_later(self._spec.timeout_s, self.stop, "timeout"))
        if self._exited:
            self._try_finish()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        chunk = data.encode() if isinstance(data, str) else data
        if fd == 1:
            self._read_stdout(chunk)
        elif fd == 2:
            self._stderr += chunk
            del self._stderr[: -self._spec.stderr_tail_bytes or len(self._stderr)]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        self._try_finish()

    def process_exited(self) -> None:
        self._exited = True
        if self._open_pipes and not self.finished:
            self._timers.append(self._loop.call_later(self._spec.pipe_linger_s, self._abandon))
        self._try_finish()

    def stop(self, reason: ExecOutcome) -> None:
        """Stop the program for ``reason``: TERM the group now, KILL it after the grace."""
        if self.finished or self._stop_reason is not None:
            return
        self._stop_reason = reason
        if reason == "cancelled":
            self._signal_group(signal.SIGKILL)
            return
        self._signal_group(signal.SIGTERM)
        self._timers.append(
            self._loop.call_later(self._spec.kill_grace_s, self._signal_group, signal.SIGKILL)
        )

    def _read_stdout(self, chunk: bytes, *, end: bool = False) -> None:
        latest: tuple[float, float] | None = None
        *complete, rest = chunk.split(b"\n")
        for piece in complete:
            latest = self._end_line(piece, b"\n") or latest
        if end and (rest or self._line):  # the last line has no newline
            latest = self._end_line(rest, b"") or latest
            rest = b""
        self._line += rest
        if len(self._line) > _MAX_LINE:  # too long for a progress line
            self._keep(self._line)
            self._line.clear()
            self._skipping_line = True
        if latest is not None:
            self._progress = latest
            if self._on_progress is not None:
                self._on_progress(*latest)

    def _end_line(self, piece: bytes, newline: bytes) -> tuple[float, float] | None:
        """Complete the held line with ``piece``: its progress, or ``None`` having kept it."""
        line = bytes(self._line) + piece
        self._line.clear()
        progress = None if self._skipping_line else _parse_progress(line)
        self._skipping_line = False
        if progress is None and self._spec.stdout_max_bytes:
            self._keep(line + newline)
        return progress

    def _keep(self, data: bytes | bytearray) -> None:
        limit = self._spec.stdout_max_bytes
        if not limit or self._stdout_truncated:
            return
        room = limit - len(self._stdout)
        self._stdout += data[:room]
        self._stdout_truncated = len(data) > room

    def _abandon(self) -> None:
        self._signal_group(signal.SIGKILL)
        self._open_pipes.clear()
        self._try_finish()

    def _signal_group(self, signum: signal.Signals) -> None:
        if self._transport is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._transport.get_pid(), signum)

    def _try_finish(self) -> None:
        if self.finished or not self._exited or self._open_pipes or self._transport is None:
            return
        self.finished = True
        for timer in self._timers:
            timer.cancel()
        self._read_stdout(b"", end=True)
        self._signal_group(signal.SIGKILL)  # leftovers of the group, if any
        result = self._result(self._transport.get_returncode())
        self._transport.close()
        self._on_done(result)

    def _result(self, exit_code: int | None) -> ExecResult:
        outcome: ExecOutcome = self._stop_reason or (
            "ok" if exit_code in self._spec.expect_exit else "exit-code"
        )
        tail = self._stderr.decode("utf-8", "replace")
        return ExecResult(
            outcome=outcome,
            exit_code=exit_code,
            duration_s=time.monotonic() - self._started,
            stderr_tail=tail,
            progress=self._progress,
            message=_message(outcome, exit_code, self._spec, tail),
            stdout=bytes(self._stdout) if self._spec.stdout_max_bytes else None,
            stdout_truncated=self._stdout_truncated,
        )


def _parse_progress(line: bytes) -> tuple[float, float] | None:
    match = _PROGRESS.fullmatch(line)
    if match is None:
        return None
    done, total = float(match.group(1)), float(match.group(2))
    if total <= 0:
        return None
    return min(done, total), total


def _environment(spec: ExecSpec) -> dict[str, str]:
    base = dict(os.environ) if spec.inherit_env else {}
    base.update(spec.env)
    return base


def _start_failure(spec: ExecSpec, exc: OSError) -> str:
    program = spec.argv[0]
    if isinstance(exc, FileNotFoundError) and spec.cwd and not os.path.isdir(spec.cwd):
        return f'exec: cannot start "{program}": working directory "{spec.cwd}" does not exist'
    if isinstance(exc, FileNotFoundError):
        where = "no such file" if os.sep in program else "not found on PATH"
        return f'exec: cannot start "{program}": {where}; give an absolute path or fix PATH'
    if isinstance(exc, PermissionError):
        return f'exec: cannot start "{program}": permission denied; is it executable?'
    return f'exec: cannot start "{program}": {exc.strerror or exc}'


def _message(outcome: ExecOutcome, exit_code: int | None, spec: ExecSpec, tail: str) -> str:
    last = tail.strip().splitlines()[-1] if tail.strip() else ""
    detail = f": {last}" if last else ""
    match outcome:
        case "ok":
            return ""
        case "timeout":
            limit = format_duration(spec.timeout_s or 0.0)
            return f"{spec.argv[0]}: timed out after {limit}; process group killed{detail}"
        case "cancelled":
            return f"{spec.argv[0]}: cancelled; process group killed"
        case _:
            expected = " or ".join(map(str, spec.expect_exit))
            return f"{spec.argv[0]}: {_describe_exit(exit_code)}, expected {expected}{detail}"


def _describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "no exit status"
    if exit_code < 0:
        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exit code {exit_code}"
