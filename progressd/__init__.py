"""progressd: run long, many-user workloads and know exactly where they stand."""

from __future__ import annotations

from progressd.errors import (
    ConfigError,
    ControlError,
    DslError,
    ProgressdError,
    ResourceError,
    StateError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ControlError",
    "DslError",
    "ProgressdError",
    "ResourceError",
    "StateError",
    "__version__",
]
