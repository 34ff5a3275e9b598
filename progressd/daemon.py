"""The daemon's lifecycle: ``startup()`` -> ``main_loop()`` -> ``shutdown(deadline)``.

Design note. Everything runs on one uvloop event loop in one thread. The ``Daemon`` owns the
control server, the metrics endpoint, the loop-lag probe and the systemd watchdog; background
tasks are held in one set (strong references) and cancelled, by name, at shutdown. Signal
handlers are installed and removed in one place (``_signal_handlers``): SIGTERM and SIGINT ask
``main_loop`` to return, SIGHUP asks it to reload the config. A second stop signal cuts the
drain short.

Extension point. Later capabilities add themselves before ``run()`` with ``add_routes`` (control
endpoints), ``add_startup_hook``/``add_shutdown_hook`` (e.g. resume runs, snapshot stable state,
release leases), ``add_stopping_hook`` (called before the socket stops: end event streams),
``telemetry.register`` (collectors) and ``runs`` (the run registry).
``build_daemon`` calls each extension (``default_extensions()`` unless told otherwise) with
the daemon before it runs; the OpenAPI test builds the daemon the same way, so every route an
extension adds must be documented.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import uvloop
from aiohttp import web

from progressd import __version__
from progressd.api import StatusReply
from progressd.clock import Clock, MonotonicClock
from progressd.config import Config, load_config
from progressd.control import ControlServer, PeerCheck, Route, json_response
from progressd.errors import ConfigError, ProgressdError
from progressd.logs import configure_logging, get_logger
from progressd.sdnotify import Notifier
from progressd.telemetry import LoopLagProbe, MetricSpec, StatisticsCollector, Telemetry

__all__ = [
    "Daemon",
    "DaemonStatistics",
    "Extension",
    "build_daemon",
    "default_extensions",
    "serve",
]

log = get_logger("progressd.daemon")

Hook = Callable[[], Awaitable[None]]
Extension = Callable[["Daemon"], None]
_RESTART_ONLY = ("control.socket", "control.mode", "metrics.listen", "state.directory", "pools")


class DaemonStatistics(msgspec.Struct, kw_only=True, frozen=True):
    """What telemetry reads from the daemon at scrape time."""

    uptime_seconds: float
    runs: int
    background_tasks: int


class Daemon:
    """One progressd process: its servers, background tasks, runs and lifecycle."""

    def __init__(
        self,
        config: Config,
        *,
        notifier: Notifier | None = None,
        peer_check: PeerCheck | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.notifier = notifier if notifier is not None else Notifier()
        self.clock = clock if clock is not None else MonotonicClock()
        self.telemetry = Telemetry()
        self.lag = LoopLagProbe(self.clock, self.telemetry.loop_lag)
        self.control = ControlServer(
            config.control.socket,
            mode=config.control.mode_bits,
            group=config.control.group,
            peer_check=peer_check,
        )
        self.runs: dict[str, Any] = {}
        self.routes: list[Route] = [
            Route("GET", "/v1/status", self._handle_status, "Daemon health and identity")
        ]
        self._startup_hooks: list[tuple[str, Hook]] = []
        self._shutdown_hooks: list[tuple[str, Hook]] = []
        self._stopping_hooks: list[tuple[str, Callable[[], object]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake = asyncio.Event()
        self._stop_reason: str | None = None
        self._reload_wanted = False
        self._drain: asyncio.Task[None] | None = None
        self._started = self.clock.now()
        self._started_at = datetime.now(UTC)
        self.telemetry.register(StatisticsCollector(self.statistics, _DAEMON_METRICS))

    # -- extension points -------------------------------------------------------------------

    def add_routes(self, routes: Iterable[Route]) -> None:
        """Serve more control endpoints (call before ``run()``)."""
        self.routes.extend(routes)

    def add_startup_hook(self, name: str, hook: Hook) -> None:
        """Run ``hook`` during ``startup()``, after the state directory exists."""
        self._startup_hooks.append((name, hook))

    def add_shutdown_hook(self, name: str, hook: Hook) -> None:
        """Run ``hook`` during the drain, in reverse order of registration, within the deadline."""
        self._shutdown_hooks.append((name, hook))

    def add_stopping_hook(self, name: str, hook: Callable[[], object]) -> None:
        """Call ``hook`` as shutdown begins, before the control socket stops serving, so
        long-lived answers (event streams) can end before the socket's drain waits for them."""
        self._stopping_hooks.append((name, hook))

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a background task the daemon keeps alive and cancels at shutdown."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def statistics(self) -> DaemonStatistics:
        return DaemonStatistics(
            uptime_seconds=self.clock.now() - self._started,
            runs=len(self.runs),
            background_tasks=len(self._tasks),
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self) -> int:
        """The whole life: start, serve until a stop signal, shut down. Returns the exit code.

        Raises:
            ProgressdError: startup failed (the socket is taken, the metrics port is busy...).
        """
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: lambda: self.request_stop("SIGTERM"),
            signal.SIGINT: lambda: self.request_stop("SIGINT"),
            signal.SIGHUP: self.request_reload,
        }
        with _signal_handlers(loop, handlers):
            try:
                await self.startup()
                await self.main_loop()
            finally:
                await self.shutdown(self.config.daemon.shutdown_deadline)
        return 0

    async def startup(self) -> None:
        """Open the state directory, start metrics and the control socket, then say READY.

        Raises:
            ProgressdError: a resource the daemon needs is unavailable.
        """
        self._started, self._started_at = self.clock.now(), datetime.now(UTC)
        self._open_state_directory()
        for name, hook in self._startup_hooks:
            log.debug("startup hook", hook=name)
            await hook()
        await self._start_metrics()
        await self.control.start(self.routes)
        self.spawn(self.lag.run(), "loop-lag-probe")
        interval = self.notifier.watchdog_interval
        if interval is not None:
            self.spawn(self._watchdog(interval), "sd-watchdog")
        self.notifier.ready(status=self._status_line())
        log.info(
            "progressd ready",
            version=__version__,
            pid=os.getpid(),
            socket=self.control.socket_path,
            metrics=_format_address(self.telemetry.address),
            config=self.config.source,
        )

    async def main_loop(self) -> None:
        """Serve until a stop is requested, reloading the config on request."""
        while self._stop_reason is None:
            await self._wake.wait()
            self._wake.clear()
            if self._reload_wanted:
                self._reload_wanted = False
                self.reload()

    async def shutdown(self, deadline: float) -> None:
        """Stop serving, run the shutdown hooks within ``deadline`` seconds, cancel the rest."""
        began = time.monotonic()
        reason = self._stop_reason or "startup failed"
        self.notifier.stopping(status=f"stopping ({reason})")
        log.info("shutting down", reason=reason, deadline=deadline)
        for name, hook in self._stopping_hooks:
            try:
                hook()
            except Exception:
                log.exception("stopping hook failed", hook=name)
        await self.control.stop()
        drain = self._drain = asyncio.get_running_loop().create_task(self._run_shutdown_hooks())
        await asyncio.wait({drain}, timeout=deadline)
        if not drain.done() or drain.cancelled():
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)
            log.warning("shutdown hooks did not finish; cut short", deadline=deadline)
        cancelled = await self._cancel_tasks()
        await self.telemetry.stop()
        self.notifier.close()
        log.info("stopped", cancelled=cancelled, seconds=round(time.monotonic() - began, 3))

    # -- requests from signals --------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Ask ``main_loop`` to return; a second request cuts the drain short."""
        if self._stop_reason is not None:
            log.warning("second stop request; cutting the drain short", signal=reason)
            if self._drain is not None:
                self._drain.cancel()
            return
        log.info("stop requested", signal=reason)
        self._stop_reason = reason
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_wanted = True
        self._wake.set()

    def reload(self) -> bool:
        """Re-read the config file; a bad one is logged and the running config kept."""
        path = self.config.source
        if path is None:
            log.info("reload requested but the daemon runs on built-in defaults; nothing to do")
            return False
        self.notifier.reloading()
        try:
            new = load_config(path)
            self._apply(new)
        except ProgressdError as exc:
            log.error("config reload failed; keeping the running config", error=str(exc))
            self.notifier.ready(status=f"reload failed: {exc}")
            return False
        log.info("config reloaded", config=path)
        self.notifier.ready(status=self._status_line())
        return True

    # -- internals --------------------------------------------------------------------------

    def _apply(self, new: Config) -> None:
        changed = [key for key in _RESTART_ONLY if _dig(new, key) != _dig(self.config, key)]
        if changed:
            log.warning("changed settings take effect after a restart", keys=changed)
        self.control.apply_group(new.control.group)
        daemon = new.daemon
        configure_logging(daemon.log_format, daemon.log_level)
        self.config = new

    def _open_state_directory(self) -> None:
        directory = self.config.state.directory
        try:
            os.makedirs(directory, mode=0o750, exist_ok=True)
        except OSError as exc:
            message = f"cannot create the state directory {directory}: {exc.strerror}"
            raise ConfigError(message, path=self.config.source, key="state.directory") from None

    async def _start_metrics(self) -> None:
        address = self.config.metrics.address
        if address is None:
            return
        try:
            await self.telemetry.start(*address)
        except OSError as exc:
            where = _format_address(address)
            message = f"cannot listen on {where}: {exc.strerror}"
            raise ConfigError(message, path=self.config.source, key="metrics.listen") from None

    async def _run_shutdown_hooks(self) -> None:
        for name, hook in reversed(self._shutdown_hooks):
            log.debug("shutdown hook", hook=name)
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed", hook=name)

    async def _cancel_tasks(self) -> list[str]:
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return sorted(t.get_name() for t in tasks)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", task=task.get_name(), exc_info=task.exception())

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _status_line(self) -> str:
        return f"serving on {self.control.socket_path}; {len(self.runs)} runs"

    async def _handle_status(self, request: web.Request) -> web.Response:
        stats = self.statistics()
        return json_response(
            StatusReply(
                version=__version__,
                pid=os.getpid(),
                started_at=self._started_at.isoformat(timespec="seconds"),
                uptime_seconds=round(stats.uptime_seconds, 3),
                loop_lag_seconds=self.lag.last,
                loop_lag_max_seconds=self.lag.max_seen,
                runs=stats.runs,
                socket=self.control.socket_path,
                metrics=_format_address(self.telemetry.address),
                config=self.config.source,
            )
        )


_DAEMON_METRICS = (
    MetricSpec("uptime_seconds", "progressd_uptime_seconds", "Seconds since the daemon started."),
    MetricSpec("runs", "progressd_runs", "Runs the daemon holds (any state)."),
    MetricSpec("background_tasks", "progressd_background_tasks", "Daemon background tasks."),
)


def _dig(config: Config, dotted: str) -> object:
    section, _, key = dotted.partition(".")
    node = getattr(config, section)
    return getattr(node, key.replace("-", "_")) if key else node


def _format_address(address: tuple[str, int] | None) -> str | None:
    if address is None:
        return None
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextlib.contextmanager
def _signal_handlers(
    loop: asyncio.AbstractEventLoop, handlers: Mapping[signal.Signals, Callable[[], None]]
) -> Iterator[None]:
    for signum, handler in handlers.items():
        loop.add_signal_handler(signum, handler)
    try:
        yield
    finally:
        for signum in handlers:
            loop.remove_signal_handler(signum)


def default_extensions() -> tuple[Extension, ...]:
    """The capabilities ``progressd serve`` installs into every daemon.

    Later capabilities (runs, pools, leases...) add their ``install(daemon)`` here, imported
    lazily so the core never imports the daemon. The store comes first: its startup hook opens
    the history before runs resume, and its shutdown hook (hooks run in reverse) closes it last.
    """
    from progressd.runs.api import install as install_runs
    from progressd.store import install as install_store

    return (install_store, install_runs)


def build_daemon(
    config: Config,
    *,
    extensions: Sequence[Extension] | None = None,
    notifier: Notifier | None = None,
) -> Daemon:
    """A ``Daemon`` with ``extensions`` (default: ``default_extensions()``) installed."""
    daemon = Daemon(config, notifier=notifier)
    for install in default_extensions() if extensions is None else extensions:
        install(daemon)
    return daemon


def serve(config_path: str | None, extensions: Sequence[Extension] | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT; the ``progressd serve`` command.

    Raises:
        ConfigError: the config file is invalid.
        ProgressdError: the daemon could not start.
    """
    config = load_config(config_path)
    configure_logging(config.daemon.log_format, config.daemon.log_level)
    notifier = Notifier.from_environ()

    async def main() -> int:
        daemon = build_daemon(config, extensions=extensions, notifier=notifier)
        return await daemon.run()

    return uvloop.run(main())
