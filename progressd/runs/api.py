"""The runs and resources endpoints of the control socket, and ``install(daemon)``.

Routes (documented in ``progressd/openapi.yaml``):

- ``POST /v1/runs`` submit; ``GET /v1/runs`` list (with ``state``, ``since`` or ``limit``: the
  history from the store merged with the live runs, ``runs/history.py``);
  ``GET /v1/runs/{run}`` the summary;
  ``GET /v1/runs/{run}/events`` the NDJSON event stream (``runs/messages.py``);
  ``POST /v1/runs/{run}/pause|resume|cancel|rollback|reports``.
- ``GET /v1/pools``, ``GET /v1/leases?run=``, ``POST /v1/pools/{pool}/members/{member}/drain``.

Errors: a body that is not JSON or has a wrong field type is 400 naming the field; a DSL error
is 400 with its ``file:line:col:`` message; an unknown run is 404; steering a run that has
ended is 409. The event stream sends the retained journal first, then a progress line every
``interval`` seconds (query parameter, default 0.5, 0.05..10) and journal lines as they come,
and ends with an ``end`` line when the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from aiohttp import web

from progressd.control import ApiError, Route, json_response
from progressd.dsl import Plan, load_plan, load_plan_text
from progressd.errors import DslError, ProgressdError, ResourceError, StateError
from progressd.logs import get_logger
from progressd.reports import decode_report_batch
from progressd.runs.history import parse_since, query_history
from progressd.runs.manager import RunEnded, RunEntry, RunManager, UnknownRun
from progressd.runs.messages import (
    DrainReply,
    DrainRequest,
    LeaseList,
    PoolList,
    ProgressEvent,
    RollbackReply,
    RollbackRequest,
    RunList,
    RunStateReply,
    SubmitReply,
    SubmitRequest,
    encode_event,
)
from progressd.runs.recovery import install_persistence
from progressd.runs.shared import SharedPools
from progressd.store import Store, store_of
from progressd.summary import encode_summary

if TYPE_CHECKING:
    from progressd.daemon import Daemon

__all__ = ["RunsApi", "install", "manager_of"]

log = get_logger("progressd.runs")

T = TypeVar("T", bound=msgspec.Struct)
_DEFAULT_INTERVAL_S, _MIN_INTERVAL_S, _MAX_INTERVAL_S = 0.5, 0.05, 10.0
_CANCEL_WAIT_S = 5.0
_MAX_HISTORY = 10_000
_managers: weakref.WeakKeyDictionary[Daemon, RunManager] = weakref.WeakKeyDictionary()


class RunsApi:
    """The handlers, over one ``RunManager``."""

    def __init__(self, manager: RunManager, store: Callable[[], Store] | None = None) -> None:
        """``store`` gives the open store for the history (``None``: live runs only)."""
        self.manager = manager
        self.store = store

    def routes(self) -> list[Route]:
        run = "/v1/runs/{run}"
        return [
            Route("POST", "/v1/runs", self.submit, "Submit a scenario; it starts at once"),
            Route("GET", "/v1/runs", self.list_runs, "Runs held: live, then recent finished"),
            Route("GET", run, self.show, "One run's summary"),
            Route("GET", f"{run}/events", self.events, "The run's progress as NDJSON"),
            Route("POST", f"{run}/pause", self.pause, "Pause a run"),
            Route("POST", f"{run}/resume", self.resume, "Resume a paused run"),
            Route("POST", f"{run}/cancel", self.cancel, "Cancel a run"),
            Route("POST", f"{run}/reports", self.reports, "Deliver external progress reports"),
            Route("POST", f"{run}/rollback", self.rollback, "Roll users back (manual)"),
            Route("GET", "/v1/pools", self.pools, "Pools of the live runs"),
            Route("GET", "/v1/leases", self.leases, "Leases held (optionally of one run)"),
            Route(
                "POST",
                "/v1/pools/{pool}/members/{member}/drain",
                self.drain,
                "Stop (or resume) granting leases on a member",
            ),
        ]

    # -- runs ---------------------------------------------------------------------------------

    async def submit(self, request: web.Request) -> web.Response:
        body = await _decode(request, SubmitRequest, required=True)
        assert body is not None
        plan = _load(body, self.manager.shared_pool_names)
        with _errors():
            run = self.manager.submit(
                plan, users=body.users, source=_source(body), file=body.file or body.path or ""
            )
        return json_response(SubmitReply(run=run.id), status=201)

    async def list_runs(self, request: web.Request) -> web.Response:
        query = request.query
        if not {"state", "since", "limit"} & set(query) or self.store is None:
            return json_response(RunList(runs=[entry.summary() for entry in self.manager]))
        try:
            since = parse_since(query["since"]) if query.get("since") else None
            limit = int(query.get("limit") or 100)
            if not 1 <= limit <= _MAX_HISTORY:
                raise ValueError(f"limit: expected 1..{_MAX_HISTORY}, got {limit}")
            history = query_history(
                self.store(), self.manager, state=query.get("state") or None, since=since,
                limit=limit,
            )  # fmt: skip
        except ValueError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        except StateError as exc:  # no store installed or open: no history to read
            raise ApiError(503, "unavailable", str(exc)) from None
        return json_response(history)

    async def show(self, request: web.Request) -> web.Response:
        entry = self._entry(request)
        return web.Response(body=encode_summary(entry.summary()), content_type="application/json")

    async def pause(self, request: web.Request) -> web.Response:
        with _errors():
            run = self.manager.pause(request.match_info["run"])
        return json_response(RunStateReply(run=run.id, state=run.summary().state))

    async def resume(self, request: web.Request) -> web.Response:
        with _errors():
            run = self.manager.resume(request.match_info["run"])
        return json_response(RunStateReply(run=run.id, state=run.summary().state))

    async def cancel(self, request: web.Request) -> web.Response:
        with _errors():
            run = self.manager.cancel(request.match_info["run"])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CANCEL_WAIT_S):
                await run.wait()
        return json_response(RunStateReply(run=run.id, state=run.summary().state))

    async def reports(self, request: web.Request) -> web.Response:
        entry = self._entry(request)
        try:
            batch = decode_report_batch(await request.read())
        except ValueError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        with _errors():
            return json_response(self.manager.deliver_reports(entry.id, batch.reports))

    async def rollback(self, request: web.Request) -> web.Response:
        body = await _decode(request, RollbackRequest, required=False) or RollbackRequest()
        run_id = request.match_info["run"]
        with _errors():
            users = self.manager.rollback(run_id, body.user)
        return json_response(RollbackReply(run=run_id, users=users))

    async def events(self, request: web.Request) -> web.StreamResponse:
        entry = self._entry(request)
        interval = _interval(request.query.get("interval"))
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            await _stream(entry, response, interval)
        except (ConnectionResetError, ConnectionError):
            scenario = entry.summary().name
            log.debug("event stream closed by the reader", run=entry.id, scenario=scenario)
        return response

    # -- resources ----------------------------------------------------------------------------

    async def pools(self, request: web.Request) -> web.Response:
        return json_response(PoolList(pools=self.manager.pools()))

    async def leases(self, request: web.Request) -> web.Response:
        with _errors():
            leases = self.manager.leases(request.query.get("run") or None)
        return json_response(LeaseList(leases=leases))

    async def drain(self, request: web.Request) -> web.Response:
        body = await _decode(request, DrainRequest, required=False) or DrainRequest()
        pool, member = request.match_info["pool"], request.match_info["member"]
        with _errors():
            run_id, record = self.manager.drain(
                pool, member, run_id=request.query.get("run") or None, draining=body.draining
            )
        return json_response(DrainReply(pool=pool, run=run_id, member=record))

    def _entry(self, request: web.Request) -> RunEntry:
        with _errors():
            return self.manager.entry(request.match_info["run"])


async def _stream(entry: RunEntry, response: web.StreamResponse, interval: float) -> None:
    """Journal lines as they come, a progress line at most every ``interval`` s, ``end``."""
    loop = asyncio.get_running_loop()
    journal, cursor, next_tick = entry.journal, 0, loop.time()
    while True:
        lines, cursor = journal.since(cursor)
        chunk = b"".join(encode_event(line) for line in lines)
        end = journal.end
        if end is not None or loop.time() >= next_tick:
            chunk += encode_event(ProgressEvent(progress=entry.progress()))
            next_tick = loop.time() + interval
        if end is not None:
            await response.write(chunk + encode_event(end))
            return
        if chunk:
            await response.write(chunk)
        await journal.wait_change(max(0.0, next_tick - loop.time()))


def _interval(raw: str | None) -> float:
    if raw is None:
        return _DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not _MIN_INTERVAL_S <= value <= _MAX_INTERVAL_S:
        message = f"interval must be seconds between {_MIN_INTERVAL_S} and {_MAX_INTERVAL_S}"
        raise ApiError(400, "bad_request", f"{message}, got {raw!r}")
    return value


async def _decode(request: web.Request, kind: type[T], *, required: bool) -> T | None:
    """The JSON body as ``kind``; ``None`` for an empty optional body.

    Raises:
        ApiError: 400 naming the faulty field, or the body is missing.
    """
    data = await request.read()
    if not data.strip():
        if required:
            raise ApiError(400, "bad_request", f"this request needs a JSON body ({kind.__name__})")
        return None
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "bad_request", f"invalid request body: {exc}") from None


def _source(body: SubmitRequest) -> str:
    if body.text is not None:
        return body.text
    assert body.path is not None
    try:
        return Path(body.path).read_text(encoding="utf-8")
    except OSError as exc:  # it loaded a moment ago
        raise ApiError(400, "bad_request", f"cannot read {body.path}: {exc}") from None


def _load(body: SubmitRequest, shared_pools: frozenset[str]) -> Plan:
    """The submitted plan; a lease may name one of the daemon's ``shared_pools``."""
    try:
        if body.path is not None:
            return load_plan(body.path, shared_pools=shared_pools)
        assert body.text is not None
        file = body.file or "<submitted>"
        return load_plan_text(body.text, file=file, shared_pools=shared_pools)
    except DslError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None


class _errors:
    """Map the manager's errors to API errors: unknown run 404, ended run 409, others 400."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None or not isinstance(exc, ProgressdError):
            return
        if isinstance(exc, UnknownRun):
            raise ApiError(404, "not_found", str(exc)) from None
        if isinstance(exc, RunEnded):
            raise ApiError(409, "conflict", str(exc)) from None
        if isinstance(exc, (StateError, ResourceError)):
            raise ApiError(400, "bad_request", str(exc)) from None


def manager_of(daemon: Daemon) -> RunManager:
    """The ``RunManager`` installed into ``daemon``.

    Raises:
        StateError: the runs extension is not installed.
    """
    manager = _managers.get(daemon)
    if manager is None:
        raise StateError("the runs extension is not installed in this daemon")
    return manager


def install(daemon: Daemon) -> None:
    """Serve the runs and resources endpoints from ``daemon``; an ``Extension``."""
    manager = _managers[daemon] = RunManager(entries=daemon.runs)
    daemon.add_routes(RunsApi(manager, lambda: store_of(daemon)).routes())

    async def start_pools() -> None:
        plans = daemon.config.pool_plans()
        if plans:
            manager.shared_pools = SharedPools(plans, asyncio.get_running_loop())
            manager.shared_pools.start()
            log.info("shared pools ready", pools=[p.name for p in plans])

    async def close_pools() -> None:
        if manager.shared_pools is not None:
            await manager.shared_pools.close()

    daemon.add_startup_hook("shared-pools", start_pools)
    daemon.add_shutdown_hook("shared-pools", close_pools)
    install_persistence(daemon, manager)

    async def cancel_runs() -> None:
        cancelled = await manager.shutdown(daemon.config.daemon.shutdown_deadline)
        if cancelled:
            log.warning("runs cancelled at shutdown", runs=cancelled)

    daemon.add_stopping_hook("runs-cancel", manager.cancel_all)
    daemon.add_shutdown_hook("runs-wait", cancel_runs)
