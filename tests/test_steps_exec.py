"""The exec step against real subprocesses, on uvloop as the daemon runs it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop

from progressd.steps import ExecHandle, ExecResult, ExecSpec, ExecStartError, start_exec

pytestmark = pytest.mark.integration

PY = sys.executable


def _python(code: str, **options: object) -> ExecSpec:
    return ExecSpec(argv=(PY, "-c", code), **options)  # type: ignore[arg-type]


def _run(
    spec: ExecSpec,
    *,
    progress: list[tuple[float, float]] | None = None,
    while_running: Callable[[ExecHandle], None] | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop,
) -> ExecResult:
    async def main() -> ExecResult:
        done: asyncio.Future[ExecResult] = asyncio.get_running_loop().create_future()
        handle = await start_exec(
            spec,
            on_done=done.set_result,
            on_progress=(lambda d, t: progress.append((d, t))) if progress is not None else None,
        )
        if while_running is not None:
            while_running(handle)
        result = await asyncio.wait_for(done, 15.0)
        assert handle.done
        return result

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def test_exec_success_reports_ok_and_empty_message() -> None:
    result = _run(_python("pass"))
    assert result.ok
    assert result.exit_code == 0
    assert result.message == ""
    assert result.duration_s > 0


def test_exec_unexpected_exit_code_fails_with_stderr_line() -> None:
    result = _run(_python("import sys; sys.stderr.write('noise\\nboom\\n'); sys.exit(3)"))
    assert result.outcome == "exit-code"
    assert result.exit_code == 3
    assert result.stderr_tail == "noise\nboom\n"
    assert result.message.endswith(": exit code 3, expected 0: boom")


def test_exec_expected_exit_codes_are_honoured() -> None:
    assert _run(_python("raise SystemExit(3)", expect_exit=(0, 3))).ok
    assert not _run(_python("pass", expect_exit=(1,))).ok


def test_exec_progress_lines_drive_the_progress_callback() -> None:
    code = (
        "import sys, time\n"
        "lines = ['progress: 1/4', 'progress: 2 / 4', 'progress: 9/0', 'x progress: 3/4']\n"
        "for line in lines:\n"
        "    print(line, flush=True); time.sleep(0.02)\n"
        "sys.stdout.write('progr'); sys.stdout.flush(); time.sleep(0.05)\n"
        "sys.stdout.write('ess: 4/4\\nbye\\n')\n"
    )
    seen: list[tuple[float, float]] = []
    result = _run(_python(code), progress=seen)
    assert result.ok
    assert result.progress == (4.0, 4.0)
    assert seen[-1] == (4.0, 4.0)
    assert set(seen) <= {(1.0, 4.0), (2.0, 4.0), (4.0, 4.0)}


def test_exec_progress_beyond_total_is_capped() -> None:
    result = _run(_python("print('progress: 12/10')"))
    assert result.progress == (10.0, 10.0)


def test_exec_env_is_added_to_the_inherited_environment() -> None:
    code = "import os; raise SystemExit(int(os.environ['PD_CODE']) + ('PATH' in os.environ))"
    result = _run(_python(code, env={"PD_CODE": "40"}, expect_exit=(41,)))
    assert result.ok, result.message


def test_exec_env_alone_when_not_inheriting() -> None:
    # Python may add LC_CTYPE itself (locale coercion); nothing of ours may leak through.
    code = (
        "import os, sys\n"
        "sys.exit(0 if os.environ.get('ONLY') == '1' and 'PATH' not in os.environ else 7)"
    )
    result = _run(_python(code, env={"ONLY": "1"}, inherit_env=False))
    assert result.ok, result.message


def test_exec_timeout_terminates_the_program() -> None:
    started = time.monotonic()
    result = _run(_python("import time; time.sleep(30)", timeout_s=0.3))
    assert result.outcome == "timeout"
    assert result.exit_code == -signal.SIGTERM
    assert "timed out after 300ms; process group killed" in result.message
    assert time.monotonic() - started < 10


def test_exec_timeout_kills_a_program_that_ignores_sigterm() -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "sys.stderr.write('ignoring TERM\\n'); sys.stderr.flush()\n"
        "time.sleep(30)\n"
    )
    result = _run(_python(code, timeout_s=1.0, kill_grace_s=0.2))
    assert result.outcome == "timeout"
    assert result.exit_code == -signal.SIGKILL
    assert result.message.endswith(": ignoring TERM")


def _is_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_exec_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(30)\n"
    )
    result = _run(_python(code, timeout_s=0.5, kill_grace_s=0.2))
    assert result.outcome == "timeout"
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while not _is_gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _is_gone(grandchild)


def test_exec_finishes_when_a_grandchild_keeps_stdout_open() -> None:
    code = "import subprocess; subprocess.Popen(['sleep', '30'])"
    started = time.monotonic()
    result = _run(_python(code, pipe_linger_s=0.2))
    assert result.ok
    assert time.monotonic() - started < 10


def test_exec_cancel_kills_and_reports_cancelled() -> None:
    result = _run(_python("import time; time.sleep(30)"), while_running=ExecHandle.cancel)
    assert result.outcome == "cancelled"
    assert result.exit_code == -signal.SIGKILL
    assert "cancelled" in result.message


def test_exec_stderr_tail_is_capped() -> None:
    code = "import sys; sys.stderr.write('x' * 100_000 + '\\nlast words\\n'); sys.exit(1)"
    result = _run(_python(code, stderr_tail_bytes=256))
    assert len(result.stderr_tail) == 256
    assert result.stderr_tail.endswith("\nlast words\n")
    assert result.message.endswith(": last words")


def test_exec_stdout_is_discarded_unless_kept() -> None:
    result = _run(_python("print('hello')"))
    assert result.stdout is None
    assert not result.stdout_truncated


def test_exec_kept_stdout_leaves_out_progress_lines_and_keeps_the_last_unterminated_line() -> None:
    code = (
        "import sys, time\n"
        "print('{\"a\":', flush=True); time.sleep(0.02)\n"
        "print('progress: 1/2', flush=True); time.sleep(0.02)\n"
        "sys.stdout.write('1}')\n"
    )
    seen: list[tuple[float, float]] = []
    result = _run(_python(code, stdout_max_bytes=1024), progress=seen)
    assert result.ok
    assert result.stdout == b'{"a":\n1}'
    assert seen == [(1.0, 2.0)]


def test_exec_kept_stdout_holds_a_line_longer_than_a_progress_line() -> None:
    code = "import sys; sys.stdout.write('x' * 200_000 + '\\nprogress: 2/2\\ny')"
    result = _run(_python(code, stdout_max_bytes=1 << 20))
    assert result.stdout == b"x" * 200_000 + b"\ny"
    assert result.progress == (2.0, 2.0)
    assert not result.stdout_truncated


def test_exec_kept_stdout_is_cut_at_its_limit() -> None:
    result = _run(_python("print('0123456789' * 10)", stdout_max_bytes=64))
    assert result.ok
    assert result.stdout == b"0123456789" * 6 + b"0123"
    assert result.stdout_truncated


@pytest.mark.parametrize(
    ("argv", "options", "message"),
    [
        (("progressd-no-such-binary",), {}, '"progressd-no-such-binary": not found on PATH'),
        (("/nonexistent/tool",), {}, '"/nonexistent/tool": no such file; give an absolute'),
        ((PY, "-c", "pass"), {"cwd": "/nonexistent-dir"}, 'working directory "/nonexistent-dir"'),
    ],
)
def test_exec_start_failures_raise_a_clear_error(
    argv: tuple[str, ...], options: dict[str, str], message: str
) -> None:
    with pytest.raises(ExecStartError, match=message):
        _run(ExecSpec(argv=argv, **options))  # type: ignore[arg-type]


def test_exec_non_executable_file_is_permission_denied(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(script, 0o644)
    with pytest.raises(ExecStartError, match="permission denied; is it executable"):
        _run(ExecSpec(argv=(str(script),)))


def test_exec_empty_argv_is_rejected() -> None:
    with pytest.raises(ValueError, match="argv is empty"):
        _run(ExecSpec(argv=()))


def test_exec_works_on_the_plain_asyncio_loop_too() -> None:
    seen: list[tuple[float, float]] = []
    code = "import time; print('progress: 1/2', flush=True); time.sleep(30)"
    result = _run(_python(code, timeout_s=0.5), progress=seen, loop_factory=asyncio.new_event_loop)
    assert result.outcome == "timeout"
    assert seen == [(1.0, 2.0)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout_s": -1.0}, "timeout_s must be a non-negative number of seconds"),
        ({"kill_grace_s": float("nan")}, "kill_grace_s must be a non-negative"),
        ({"stderr_tail_bytes": -1}, "stderr_tail_bytes cannot be negative"),
        ({"stdout_max_bytes": -1}, "stdout_max_bytes cannot be negative"),
    ],
)
def test_exec_spec_rejects_bad_limits(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExecSpec(argv=("true",), **options)  # type: ignore[arg-type]
