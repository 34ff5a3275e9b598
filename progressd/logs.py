"""Structured logs with structlog.

JSON lines on stderr by default, which journald and log shippers read as they are; a
``key=value`` console format when stderr is a terminal (``log-format = "auto"``). Loggers are not
cached, so ``configure_logging`` can be called again on SIGHUP to change level or format.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

from progressd.config import LogFormat, LogLevel

__all__ = ["configure_logging", "get_logger"]


def configure_logging(
    fmt: LogFormat = "auto", level: LogLevel = "info", *, stream: TextIO | None = None
) -> None:
    """Send progressd's structured logs to ``stream`` (stderr) in the chosen format."""
    out = stream if stream is not None else sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: structlog.typing.Processor
    if console:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _lead_with_essentials,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger whose events carry ``component=name``."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger


_FIRST = ("timestamp", "level", "event", "component")


def _lead_with_essentials(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Put timestamp, level, event and component first, so a log line reads left to right."""
    ordered: dict[str, object] = {key: event.pop(key) for key in _FIRST if key in event}
    ordered.update(event)
    return ordered


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
