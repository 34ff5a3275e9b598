"""The progressd error hierarchy.

Library code raises these; only ``cli.py`` and ``ctl.py`` turn them into exit codes. Every
message names the bad value, where it is, and what to do about it.
"""

from __future__ import annotations


class ProgressdError(Exception):
    """Root of every error progressd raises on purpose."""

    exit_code: int = 1


class ConfigError(ProgressdError):
    """Raised when the daemon configuration file is missing, malformed or invalid.

    ``path`` is the file, ``key`` the dotted key at fault (``control.socket``) when known.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        where = ""
        if key:
            where = f"{key}: "
        suffix = f" ({path})" if path else ""
        super().__init__(f"{where}{message}{suffix}")


class DslError(ProgressdError):
    """Raised when a scenario document cannot be loaded, validated or compiled.

    Carries the file, the 1-based line and column, and the document path
    (``load.scenarios[0].steps[3].http.url``) so the CLI can print ``file:line:col: message``.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str = "<string>",
        line: int | None = None,
        column: int | None = None,
        doc_path: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.doc_path = doc_path
        super().__init__(self.format())

    def format(self) -> str:
        """``file:line:col: path: message``, leaving out the parts that are unknown."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        prefix = f"{self.doc_path}: " if self.doc_path else ""
        return f"{where}: {prefix}{self.message}"


class StateError(ProgressdError):
    """Raised when an operation on run state is invalid: an unknown row, field or milestone,
    or a snapshot that cannot be restored."""


class ResourceError(ProgressdError):
    """Raised when a pool, member or lease operation is invalid (unknown pool, bad member)."""


class ControlError(ProgressdError):
    """Raised by the control client when the daemon cannot be reached or answers an error.

    ``status`` is the HTTP status when the daemon answered, else ``None``.
    """

    exit_code = 2

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class StoreError(ProgressdError):
    """Raised when the SQLite store cannot be opened, read or written: an unreadable or corrupt
    file, a schema from a newer progressd, or a write that references an unknown run.

    ``path`` is the database file. The store never replaces a file it cannot read; the message
    says what to do instead (restore a backup, upgrade, move the file aside).
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        suffix = f" ({path})" if path else ""
        super().__init__(f"{message}{suffix}")
