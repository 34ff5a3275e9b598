"""The ``exec`` step: the runner's executor, which runs a user's program and judges its end.

Design note. ``ExecStepExecutor`` renders the step's argv and env from the user's context,
starts the program with ``start_exec`` and completes the runner's call from ``on_done``,
judging the exit code against ``expect.exit-code``, the duration against ``expect.latency``,
then running any ``extract`` on stdout (it reads at most ``EXTRACT_STDOUT_MAX``, 1 MiB; more
fails the step, class ``extract``). Running the program itself (spawn, pipes, process-group
signals, the ``ExecResult``) is ``process.py``, which knows nothing of the runner; its names
are re-exported here.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from progressd.dsl import Context, RenderError, StepPlan
from progressd.dsl import ExecSpec as ExecStepSpec
from progressd.errors import StateError
from progressd.runner import StepCall, StepOutcome
from progressd.steps.extract import Extractor, extract, extract_source
from progressd.steps.leases import DEFAULT_LEASE_WAIT_S, LeaseWaits, fail_no_lease
from progressd.steps.metrics import ScenarioMetrics, StepMetrics
from progressd.steps.process import (
    ExecHandle,
    ExecOutcome,
    ExecResult,
    ExecSpec,
    ExecStartError,
    ProgressCallback,
    start_exec,
)

__all__ = [
    "EXTRACT_STDOUT_MAX",
    "ExecHandle",
    "ExecOutcome",
    "ExecResult",
    "ExecSpec",
    "ExecStartError",
    "ExecStepExecutor",
    "ProgressCallback",
    "start_exec",
]

_EXEC_SCALARS = ("stdout", "exit_code")

EXTRACT_STDOUT_MAX = 1 << 20
"""Bytes of stdout (progress lines excluded) an exec step with ``extract`` reads: 1 MiB."""


class ExecStepExecutor:
    """Runs ``exec`` steps for the runner: renders argv and env from the user's context,
    starts the program with ``start_exec`` and completes the call from ``on_done``.

    Spawning is the one await (``loop.subprocess_exec``), so each start holds a short task
    until the child exists; the program's run itself holds none. ``progress: N/M`` lines are
    kept per user in ``progress`` while the step runs (the workbook has no fine-grained
    progress column yet). With ``lease_waits``, a step whose argv or env reads ``lease.*``
    waits for its user's lease (at most its timeout, else 30 s) instead of failing.
    """

    __slots__ = (
        "_lease_waits",
        "_prepared",
        "_reads_lease",
        "_spawning",
        "progress",
        "unregistered",
    )

    def __init__(self, *, lease_waits: LeaseWaits | None = None) -> None:
        self._lease_waits = lease_waits
        self._reads_lease: set[int] = set()
        self._prepared: dict[int, tuple[StepPlan, StepMetrics, tuple[Extractor, ...]]] = {}
        self._spawning: set[asyncio.Task[None]] = set()
        self.progress: dict[int, tuple[float, float]] = {}
        """Row -> the last ``progress: N/M`` its running exec step printed."""
        self.unregistered = ScenarioMetrics(name="unregistered")

    def register(self, step: StepPlan, metrics: ScenarioMetrics) -> None:
        """Count ``step`` into ``metrics``.

        Raises:
            StateError: when ``step`` is not an exec step, or extracts from an unknown source.
        """
        if not isinstance(step.spec, ExecStepSpec):
            raise StateError(f"step {step.name!r} is a {step.kind} step, not an exec step")
        extractors = tuple(
            (var, *extract_source(source, _EXEC_SCALARS)) for var, source in step.spec.extract
        )
        self._prepared[id(step)] = (step, metrics.step(step.name), extractors)
        templates = (*step.spec.argv, *(t for _, t in step.spec.env))
        if any(f.startswith("lease") for t in templates for f in t.fields):
            self._reads_lease.add(id(step))

    def start(self, call: StepCall) -> None:
        """Spawn the program of ``call.step``; completes ``call`` when it has ended."""
        entry = self._prepared.get(id(call.step))
        if entry is None:
            self.register(call.step, self.unregistered)
            entry = self._prepared[id(call.step)]
        step, metrics, extractors = entry
        assert isinstance(step.spec, ExecStepSpec)  # register checked it
        waits = self._lease_waits
        if waits is not None and id(step) in self._reads_lease and "lease" not in call.context:
            timeout = step.spec.timeout_s or DEFAULT_LEASE_WAIT_S
            waits.park(
                call, timeout, self.start, partial(fail_no_lease, step.name, metrics, timeout)
            )
            return
        try:
            spec = _render_exec(step.spec, call.context)
        except (RenderError, ValueError) as exc:
            metrics.end("request")
            call.fail(f"{step.name}: {exc}")
            return
        spawn = self._spawn(step, metrics, extractors, spec, call)
        task = asyncio.get_running_loop().create_task(spawn)
        self._spawning.add(task)
        task.add_done_callback(self._spawning.discard)

    async def _spawn(
        self,
        step: StepPlan,
        metrics: StepMetrics,
        extractors: tuple[Extractor, ...],
        spec: ExecSpec,
        call: StepCall,
    ) -> None:
        row = call.row

        def on_progress(done: float, total: float) -> None:
            self.progress[row] = (done, total)

        def on_done(result: ExecResult) -> None:
            self.progress.pop(row, None)
            metrics.scenario.exec.record(result.duration_s)
            metrics.latency.record(result.duration_s)
            _complete_exec(step, metrics, extractors, call, result)

        try:
            await start_exec(spec, on_done=on_done, on_progress=on_progress)
        except (ExecStartError, ValueError) as exc:
            metrics.end("exec-start")
            call.fail(f"{step.name}: {exc}")

    async def wait_spawned(self) -> None:
        """Wait until no spawn is in progress (the run is closing)."""
        while self._spawning:
            await asyncio.gather(*self._spawning, return_exceptions=True)


def _render_exec(plan: ExecStepSpec, ctx: Context) -> ExecSpec:
    return ExecSpec(
        argv=tuple(t.render(ctx) for t in plan.argv),
        env={name: t.render(ctx) for name, t in plan.env},
        cwd=plan.cwd,
        timeout_s=plan.timeout_s,
        expect_exit=(plan.expect_exit_code,),
        stdout_max_bytes=EXTRACT_STDOUT_MAX if plan.extract else 0,
    )


def _complete_exec(
    step: StepPlan,
    metrics: StepMetrics,
    extractors: tuple[Extractor, ...],
    call: StepCall,
    result: ExecResult,
) -> None:
    plan = step.spec
    assert isinstance(plan, ExecStepSpec)
    failure: tuple[str, str] | None = None
    metrics.check(result.ok)
    if result.outcome == "timeout":
        failure = ("exec-timeout", f"{step.name}: {result.message}")
    elif not result.ok:
        failure = ("exec-exit-code", f"{step.name}: {result.message}")
    elif plan.expect_latency_s is not None:
        passed = result.duration_s <= plan.expect_latency_s
        metrics.check(passed)
        if not passed:
            failure = ("expectation", f"{step.name}: took {result.duration_s:.3f}s, expected "
                       f"at most {plan.expect_latency_s:.3f}s")  # fmt: skip
    variables: dict[str, Any] | None = None
    if failure is None and extractors:
        variables, failure = _extract_stdout(step.name, extractors, result)
    if failure is not None:
        metrics.end(failure[0])
        call.fail(failure[1], latency_s=result.duration_s)
        return
    metrics.end(None)
    call.complete(StepOutcome(ok=True, vars=variables, latency_s=result.duration_s))


def _extract_stdout(
    name: str, extractors: tuple[Extractor, ...], result: ExecResult
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    if result.stdout_truncated:
        names = ", ".join(var for var, _, _ in extractors)
        message = f"stdout is longer than {EXTRACT_STDOUT_MAX >> 20} MiB, the most extract reads"
        return None, ("extract", f"{name}: extract {names}: {message}")
    stdout = result.stdout or b""

    def scalar(kind: str) -> Any:
        if kind == "exit_code":
            return result.exit_code
        return stdout.decode("utf-8", "replace").rstrip("\n")  # as the shell's $(...)

    return extract(name, extractors, stdout, scalar, "stdout")
