"""The suite's own promise: async tests run on uvloop, and a leak cannot hang the suite."""

from __future__ import annotations

import asyncio
import warnings

import pytest
import uvloop
from conftest import _UvLoop


async def test_conftest_async_tests_run_on_uvloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


def test_conftest_uvloop_close_with_an_open_server_reports_it_instead_of_hanging() -> None:
    loop = _UvLoop()
    server = loop.run_until_complete(asyncio.start_server(lambda r, w: None, "127.0.0.1", 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as pytest's filterwarnings = error does
        with pytest.raises(ResourceWarning, match="unclosed resource <TCPServer"):
            loop.close()
    assert loop.is_closed()
    del server
