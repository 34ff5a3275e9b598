from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import pytest
import structlog

from progressd.logs import configure_logging, get_logger


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_logs_are_json_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    configure_logging("auto", "info", stream=out)
    get_logger("progressd.test").info("hello", run="r1")
    record = json.loads(out.getvalue())
    assert list(record)[:4] == ["timestamp", "level", "event", "component"]
    assert (record["event"], record["level"], record["run"]) == ("hello", "info", "r1")
    assert record["component"] == "progressd.test"


def test_logs_are_key_value_on_a_terminal() -> None:
    out = Tty()
    configure_logging("auto", "info", stream=out)
    get_logger("progressd.test").info("hello", run="r1")
    line = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert "[info     ] hello" in line and "run=r1" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_logs_filter_below_the_level_and_can_be_reconfigured() -> None:
    out = io.StringIO()
    configure_logging("json", "warning", stream=out)
    log = get_logger("progressd.test")
    log.info("quiet")
    configure_logging("json", "debug", stream=out)
    log.debug("loud")
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == ["loud"]


def test_logs_console_format_without_a_terminal_has_no_colours() -> None:
    out = io.StringIO()
    configure_logging("console", "info", stream=out)
    get_logger("progressd.test").warning("careful", code=7)
    assert "\x1b[" not in out.getvalue()
    assert "careful" in out.getvalue() and "code=7" in out.getvalue()
