"""Shared test set-up. Reusable helpers live in ``tests/harness.py`` (``import harness``);
this file's directory is put on ``sys.path`` by pytest, which is what makes that import work
from ``tests/integration/`` too.

Every async test runs on uvloop, the loop the daemon and ``progressd run`` use: its transports
and servers are not ``asyncio.Transport``/``asyncio.Server`` subclasses, its ``time()`` counts
whole milliseconds, and its timers can fire ~1 ms early, so testing on the stdlib loop hides
bugs. One trap comes with it: ``Loop.close()`` warns about each handle still open (a test that
failed before closing its server) and, with ``filterwarnings = error``, that warning is raised
inside libuv's close-all walk, the handle is never closed and ``close()`` waits for it forever.
``_UvLoop.close`` therefore closes with those warnings recorded, then re-issues them, so a leak
is an error of that test's teardown instead of a hung suite.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short private directory for Unix sockets (paths are limited to 107 bytes, and
    pytest's ``tmp_path`` can be longer)."""
    path = Path(tempfile.mkdtemp(prefix="pd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class _UvLoop(uvloop.Loop):
    """uvloop whose ``close()`` cannot hang on a handle a failed test left open."""

    def close(self) -> None:
        with warnings.catch_warnings(record=True) as leaks:
            warnings.simplefilter("always", ResourceWarning)
            super().close()
        for leak in leaks:  # after the loop is really closed: fails the test's teardown
            warnings.warn(leak.message, leak.category, stacklevel=2)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """Every async test runs on uvloop, the loop the daemon and `progressd run` use."""
    return {"uvloop": _UvLoop}
