"""Shared test set-up. Reusable helpers live in ``tests/harness.py`` (``import harness``);
this file's directory is put on ``sys.path`` by pytest, which is what makes that import work
from ``tests/integration/`` too."""
