"""Shared test set-up. Reusable helpers live in ``tests/harness.py`` (``import harness``);
this file's directory is put on ``sys.path`` by pytest, which is what makes that import work
from ``tests/integration/`` too."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short private directory for Unix sockets (paths are limited to 107 bytes, and
    pytest's ``tmp_path`` can be longer)."""
    path = Path(tempfile.mkdtemp(prefix="pd-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
