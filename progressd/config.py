"""The daemon configuration: ``progressd.toml`` decoded into frozen msgspec Structs.

Design note. The TOML file is parsed with ``tomllib`` and then checked in two passes. The first
walks the document against the Structs' fields, so an unknown key is reported with its dotted
path and a "did you mean" suggestion. The second is ``msgspec.convert``, which checks types and
decodes durations through ``progressd.units``; its error path is mapped back to the dotted key,
the bad value and what was expected. Every problem becomes one ``ConfigError`` naming the file.

``[pools.NAME]`` declares an ``ip-port-pool`` shared by every run: the same shape as a scenario's
``resources.ip-port-pool.NAME`` (the DSL's ``schema.Pool``), checked by the same builder
(``dsl.pools.build_pool``) so there is one definition; its errors name the config key.

Relative paths in a config file resolve against the directory holding that file, so
``config/progressd.toml`` says ``socket = "../var/progressd.sock"`` and works from any working
directory. The built-in defaults (no file at all) resolve against the working directory:
``./var/progressd.sock`` and ``./var/lib``.
"""

from __future__ import annotations

import difflib
import grp
import os
import re
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

import msgspec

from progressd.dsl.pools import build_pool
from progressd.dsl.positions import SpecError, format_path
from progressd.dsl.schema import HealthCheck, Pool
from progressd.dsl.wbs import PoolPlan
from progressd.errors import ConfigError
from progressd.units import parse_duration

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
RecoveryMode = Literal["resume", "interrupt"]

SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_METRICS_OFF = ("", "off")


class Seconds(float):
    """A duration in seconds, written in the file as ``"10s"``, ``"250ms"`` or a number."""


class ControlConfig(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, rename="kebab"
):
    """``[control]``: the Unix socket ``progressctl`` talks to."""

    socket: str = "var/progressd.sock"
    group: str = ""
    mode: int | str = 0o660

    @property
    def mode_bits(self) -> int:
        """The socket's permission bits (``mode`` is an int or an octal string like "0660")."""
        return self.mode if isinstance(self.mode, int) else int(self.mode, 8)


class MetricsConfig(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, rename="kebab"
):
    """``[metrics]``: where ``/metrics`` is served. ``"off"`` or ``""`` disables it."""

    listen: str = "127.0.0.1:9464"

    @property
    def address(self) -> tuple[str, int] | None:
        """``(host, port)``, or ``None`` when metrics are off."""
        if self.listen.strip().lower() in _METRICS_OFF:
            return None
        return _split_host_port(self.listen)


class StateConfig(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, rename="kebab"
):
    """``[state]``: where runs, history and snapshots are kept, and how often they are written.

    ``retention``: progress samples older than this are pruned. ``flush-interval``: how often
    buffered history is committed (one transaction per flush). ``sample-interval`` /
    ``snapshot-interval``: how often a run records a progress sample / a stable snapshot.
    ``snapshots-kept``: stable snapshots kept per run (the newest ones).
    """

    directory: str = "var/lib"
    retention: Seconds = Seconds(7 * 86400.0)
    flush_interval: Seconds = Seconds(1.0)
    sample_interval: Seconds = Seconds(5.0)
    snapshot_interval: Seconds = Seconds(60.0)
    snapshots_kept: int = 3


class DaemonConfig(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, rename="kebab"
):
    """``[daemon]``: lifecycle and logging."""

    shutdown_deadline: Seconds = Seconds(10.0)
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"


class RecoveryConfig(
    msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, rename="kebab"
):
    """``[recovery]``: what to do with runs found unfinished at start."""

    on_start: RecoveryMode = "resume"


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, rename="kebab"):
    """The whole daemon configuration. Paths are absolute once loaded."""

    control: ControlConfig = msgspec.field(default_factory=ControlConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    state: StateConfig = msgspec.field(default_factory=StateConfig)
    daemon: DaemonConfig = msgspec.field(default_factory=DaemonConfig)
    recovery: RecoveryConfig = msgspec.field(default_factory=RecoveryConfig)
    pools: dict[str, Pool] = {}
    """``[pools.NAME]``: ip-port-pools shared by all runs (see ``pool_plans``)."""
    source: str | None = None

    def pool_plans(self) -> tuple[PoolPlan, ...]:
        """The shared pools as the resource manager builds them (members expanded).

        Raises:
            ConfigError: a pool has a bad member, range or health check (the key is named).
        """
        plans: list[PoolPlan] = []
        for name, pool in self.pools.items():
            try:
                plans.append(build_pool(name, pool, ("pools", name)))
            except SpecError as exc:
                raise ConfigError(
                    exc.message, path=self.source, key=format_path(exc.path)
                ) from None
        return tuple(plans)


def load_config(path: str | Path | None) -> Config:
    """Read and validate a config file; ``None`` gives the built-in defaults (paths from CWD).

    Raises:
        ConfigError: the file is missing, is not TOML, or holds an unknown key or bad value.
    """
    if path is None:
        return _finish(Config(), Path.cwd(), None)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file: {exc.strerror}", path=str(file)) from None
    return parse_config(text, source=str(file), base=file.resolve().parent)


def parse_config(text: str, *, source: str = "<string>", base: Path | None = None) -> Config:
    """Validate config text; relative paths resolve against ``base`` (default: CWD).

    Raises:
        ConfigError: the text is not TOML, or holds an unknown key or bad value.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=source) from None
    _check_keys(raw, Config, prefix="", source=source)
    pools = raw.get("pools")
    if isinstance(pools, dict):
        for name, pool in pools.items():
            _check_pool(name, pool, source)
    try:
        config = msgspec.convert(raw, Config, dec_hook=_decode_custom)
    except msgspec.ValidationError as exc:
        raise _explain(exc, raw, source) from None
    return _finish(config, base or Path.cwd(), source)


def _decode_custom(kind: type, value: Any) -> Any:
    if kind is Seconds:
        return Seconds(parse_duration(value))
    raise NotImplementedError(kind)


def _check_keys(
    raw: dict[str, Any], cls: type[msgspec.Struct], *, prefix: str, source: str
) -> None:
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls) if f.encode_name != "source"}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(_unknown_key_message(key, sorted(fields)), path=source, key=dotted)
        kind = fields[key].type
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct) and isinstance(value, dict):
            _check_keys(value, kind, prefix=f"{dotted}.", source=source)


_GOT = re.compile(r"^,?\s*got `[^`]*`")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]+)`$")


def _check_pool(name: str, raw: Any, source: str) -> None:
    """Decode one ``[pools.NAME]`` table alone, so an error names its dotted key."""
    try:
        msgspec.convert(raw, Pool)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        inner = "" if match is None else match["path"].lstrip(".")
        key = ".".join(part for part in ("pools", name, inner) if part)
        what = str(exc) if match is None else match["what"]
        unknown = _UNKNOWN.match(what)
        expected = _EXPECTED.match(what)
        if unknown:
            kind = _pool_section(inner)
            known = sorted(f.encode_name for f in msgspec.structs.fields(kind))
            key, what = f"{key}.{unknown['key']}", _unknown_key_message(unknown["key"], known)
        elif expected:
            value = _lookup(raw, inner) if inner else raw
            bound = _GOT.sub("", what[expected.end() :]).strip()
            words = _type_words(expected["type"]) + (f" {bound}" if bound else "")
            what = f"expected {words}, got {value!r}"
        elif what.startswith("Invalid enum value"):
            section, _, field = inner.rpartition(".")
            choices = ", ".join(f'"{c}"' for c in _field_choices(_pool_section(section), field))
            what = f"expected one of {choices}, got {_lookup(raw, inner)!r}"
        raise ConfigError(what, path=source, key=key) from None


def _pool_section(inner: str) -> type[msgspec.Struct]:
    return HealthCheck if inner.startswith("health-check") else Pool


def _field_choices(kind: type[msgspec.Struct], name: str) -> tuple[Any, ...]:
    for f in msgspec.structs.fields(kind):
        if f.encode_name == name:
            return typing.get_args(f.type)
    return ()


def _unknown_key_message(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f'; did you mean "{close[0]}"?' if close else ";"
    return f"unknown key{hint} Valid keys here: {', '.join(known)}"


_AT = re.compile(r"^(?P<what>.*) - at `\$(?P<path>[^`]*)`$")
_EXPECTED = re.compile(r"^Expected `(?P<type>[^`]+)`")


def _explain(exc: msgspec.ValidationError, raw: dict[str, Any], source: str) -> ConfigError:
    match = _AT.match(str(exc))
    if match is None:
        return ConfigError(str(exc), path=source)
    key = match["path"].lstrip(".")
    value = _lookup(raw, key)
    what = match["what"]
    expected = _EXPECTED.match(what)
    if expected:
        what = f"expected {_type_words(expected['type'])}, got {value!r}"
    elif what.startswith("Invalid enum value"):
        what = f"expected one of {_choices(key)}, got {value!r}"
    return ConfigError(what, path=source, key=key)


def _lookup(raw: dict[str, Any], dotted: str) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _type_words(msgspec_type: str) -> str:
    words = {
        "str": "a string",
        "int": "an integer",
        "object": "a table",
        "float": "a number",
        "array": "an array",
    }
    return " or ".join(words.get(t.strip(), t.strip()) for t in msgspec_type.split("|"))


def _choices(dotted: str) -> str:
    section, _, name = dotted.partition(".")
    sections = {f.encode_name: f.type for f in msgspec.structs.fields(Config)}
    cls = sections.get(section)
    if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
        for f in msgspec.structs.fields(cls):
            if f.encode_name == name:
                return ", ".join(f'"{c}"' for c in typing.get_args(f.type))
    return "the documented values"


def _finish(config: Config, base: Path, source: str | None) -> Config:
    _validate(config, source)
    socket = os.path.normpath(base / config.control.socket)
    directory = os.path.normpath(base / config.state.directory)
    control = msgspec.structs.replace(config.control, socket=socket)
    state = msgspec.structs.replace(config.state, directory=directory)
    check_socket_path(control.socket, source)
    return msgspec.structs.replace(config, control=control, state=state, source=source)


def _validate(config: Config, source: str | None) -> None:
    ctl = config.control
    if not ctl.socket:
        raise ConfigError(
            "expected a socket path, got an empty string", path=source, key="control.socket"
        )
    try:
        bits = ctl.mode_bits
    except ValueError:
        bits = -1
    if not 0 <= bits <= 0o777:
        raise ConfigError(
            f'expected permission bits like 0o660 or "0660", got {ctl.mode!r}',
            path=source,
            key="control.mode",
        )
    if ctl.group:
        _require_group(ctl.group, source)
    try:
        config.metrics.address  # noqa: B018 - parsed for its error
    except ValueError as exc:
        raise ConfigError(str(exc), path=source, key="metrics.listen") from None
    _validate_state(config.state, source)
    msgspec.structs.replace(config, source=source).pool_plans()  # raises on a bad pool
    if config.daemon.shutdown_deadline <= 0:
        raise ConfigError(
            f"expected a positive duration, got {config.daemon.shutdown_deadline:g}s",
            path=source,
            key="daemon.shutdown-deadline",
        )


def _validate_state(state: StateConfig, source: str | None) -> None:
    for key in ("retention", "flush-interval", "sample-interval", "snapshot-interval"):
        value = getattr(state, key.replace("-", "_"))
        if value <= 0:
            message = f"expected a positive duration, got {value:g}s"
            raise ConfigError(message, path=source, key=f"state.{key}")
    if state.snapshots_kept < 1:
        message = f"expected an integer >= 1, got {state.snapshots_kept}"
        raise ConfigError(message, path=source, key="state.snapshots-kept")


def check_socket_path(path: str, source: str | None = None) -> None:
    """Unix socket paths are short; say so before ``bind()`` fails with a cryptic error.

    Raises:
        ConfigError: the path is longer than the kernel allows.
    """
    size = len(path.encode())
    if size > SOCKET_PATH_MAX:
        raise ConfigError(
            f"the path {path!r} is {size} bytes long; Unix sockets allow at most "
            f"{SOCKET_PATH_MAX} (use a shorter directory)",
            path=source,
            key="control.socket",
        )


def _require_group(name: str, source: str | None) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        raise ConfigError(
            f"expected the name of an existing group, got {name!r} (no such group)",
            path=source,
            key="control.group",
        ) from None


def _split_host_port(listen: str) -> tuple[str, int]:
    hint = f'expected "HOST:PORT" like "127.0.0.1:9464", or "off", got {listen!r}'
    host, sep, port = listen.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(hint)
    return host, int(port)
