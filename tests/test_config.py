from __future__ import annotations

import os
from pathlib import Path

import pytest

from progressd.config import SOCKET_PATH_MAX, load_config, parse_config
from progressd.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "progressd.toml"
    path.write_text(text)
    return path


def test_config_defaults_resolve_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.control.socket == str(tmp_path / "var" / "progressd.sock")
    assert config.state.directory == str(tmp_path / "var" / "lib")
    assert config.metrics.address == ("127.0.0.1", 9464)
    assert config.daemon.shutdown_deadline == 10.0
    assert config.control.mode_bits == 0o660
    assert config.recovery.on_start == "resume"
    assert config.source is None


def test_config_dev_file_keeps_everything_under_repo_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    config = load_config(REPO / "config" / "progressd.toml")
    assert config.control.socket == str(REPO / "var" / "progressd.sock")
    assert config.state.directory == str(REPO / "var" / "lib")
    assert config.daemon.log_format == "auto"


def test_config_system_file_uses_run_and_var_lib() -> None:
    text = (REPO / "config" / "progressd.system.toml").read_text()
    config = parse_config(text.replace('group = "progressd"', 'group = "root"'))
    assert config.control.socket == "/run/progressd/progressd.sock"
    assert config.state.directory == "/var/lib/progressd"
    assert config.daemon.log_format == "json"


def test_config_relative_paths_resolve_against_file_directory(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = write(
        tmp_path / "etc", '[control]\nsocket = "../run/d.sock"\n[state]\ndirectory = "db"\n'
    )
    config = load_config(path)
    assert config.control.socket == str(tmp_path / "run" / "d.sock")
    assert config.state.directory == str(tmp_path / "etc" / "db")
    assert config.source == str(path)


def test_config_durations_accept_units_and_numbers() -> None:
    assert parse_config('[daemon]\nshutdown-deadline = "1m30s"').daemon.shutdown_deadline == 90
    assert parse_config("[daemon]\nshutdown-deadline = 2.5").daemon.shutdown_deadline == 2.5


def test_config_mode_accepts_octal_string_and_toml_octal() -> None:
    assert parse_config('[control]\nmode = "0600"').control.mode_bits == 0o600
    assert parse_config("[control]\nmode = 0o640").control.mode_bits == 0o640


def test_config_metrics_off_disables_endpoint() -> None:
    assert parse_config('[metrics]\nlisten = "off"').metrics.address is None
    assert parse_config('[metrics]\nlisten = ""').metrics.address is None
    assert parse_config('[metrics]\nlisten = "[::1]:9000"').metrics.address == ("::1", 9000)


def test_config_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    path = write(tmp_path, '[control]\nsockte = "x.sock"\n')
    with pytest.raises(
        ConfigError, match=r'^control\.sockte: unknown key; did you mean "socket"\?'
    ) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "? Valid keys here: group, mode, socket (" in str(info.value)
    assert info.value.key == "control.sockte"


def test_config_unknown_section_is_named() -> None:
    with pytest.raises(ConfigError, match=r'^metric: unknown key; did you mean "metrics"\?'):
        parse_config('[metric]\nlisten = "off"\n')


def test_config_wrong_type_names_key_value_and_expectation(tmp_path: Path) -> None:
    path = write(tmp_path, "[control]\nsocket = 5\n")
    with pytest.raises(
        ConfigError, match=r"^control\.socket: expected a string, got 5 \(.*progressd\.toml\)$"
    ):
        load_config(path)


def test_config_section_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match=r"^daemon: expected a table, got 'fast'"):
        parse_config('daemon = "fast"\n')


def test_config_bad_duration_names_the_expected_form() -> None:
    with pytest.raises(
        ConfigError,
        match=r'^daemon\.shutdown-deadline: expected a duration like "1s", "250ms" or "1h30m", '
        r"got 'soon'",
    ):
        parse_config('[daemon]\nshutdown-deadline = "soon"\n')


def test_config_zero_deadline_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"^daemon\.shutdown-deadline: expected a positive duration"
    ):
        parse_config('[daemon]\nshutdown-deadline = "0s"\n')


def test_config_bad_choice_lists_the_choices() -> None:
    with pytest.raises(
        ConfigError,
        match=r'^daemon\.log-format: expected one of "auto", "json", "console", got \'xml\'',
    ):
        parse_config('[daemon]\nlog-format = "xml"\n')
    with pytest.raises(
        ConfigError, match=r'^recovery\.on-start: expected one of "resume", "interrupt"'
    ):
        parse_config('[recovery]\non-start = "restart"\n')


def test_config_bad_listen_address() -> None:
    with pytest.raises(
        ConfigError,
        match=r'^metrics\.listen: expected "HOST:PORT" like "127.0.0.1:9464", or "off", '
        r"got 'nowhere'",
    ):
        parse_config('[metrics]\nlisten = "nowhere"\n')


def test_config_bad_mode() -> None:
    with pytest.raises(ConfigError, match=r"^control\.mode: expected permission bits"):
        parse_config('[control]\nmode = "rw-rw----"\n')


def test_config_unknown_group_is_refused() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^control\.group: expected the name of an existing group, got 'no-such-group-pd'",
    ):
        parse_config('[control]\ngroup = "no-such-group-pd"\n')


def test_config_socket_path_too_long_is_explained() -> None:
    long = "/tmp/" + "d" * SOCKET_PATH_MAX + "/x.sock"
    with pytest.raises(
        ConfigError,
        match=r"^control\.socket: the path .* bytes long; Unix sockets allow at most 107",
    ):
        parse_config(f'[control]\nsocket = "{long}"\n')


def test_config_invalid_toml_gives_position(tmp_path: Path) -> None:
    path = write(tmp_path, "[control\nsocket = 1\n")
    with pytest.raises(ConfigError, match=r"^not valid TOML: .*line 1.*progressd\.toml\)$"):
        load_config(path)


def test_config_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(
        ConfigError,
        match=r"^cannot read the config file: No such file or directory \(.*nope\.toml\)$",
    ):
        load_config(missing)
    assert not os.path.exists(missing)


def test_config_state_history_keys_have_defaults() -> None:
    state = parse_config("").state
    assert state.retention == 7 * 86400.0
    assert state.flush_interval == 1.0
    assert state.sample_interval == 5.0
    assert state.snapshot_interval == 60.0
    assert state.snapshots_kept == 3


def test_config_state_history_keys_parse_durations() -> None:
    text = (
        '[state]\nretention = "2d"\nflush-interval = "250ms"\nsample-interval = "10s"\n'
        'snapshot-interval = "5m"\nsnapshots-kept = 5\n'
    )
    state = parse_config(text).state
    assert (state.retention, state.flush_interval) == (172800.0, 0.25)
    assert (state.sample_interval, state.snapshot_interval, state.snapshots_kept) == (10, 300, 5)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('retention = "0s"', r"state\.retention: expected a positive duration, got 0s"),
        ('flush-interval = "soon"', r"state\.flush-interval: .*duration"),
        ("snapshots-kept = 0", r"state\.snapshots-kept: expected an integer >= 1, got 0"),
    ],
)
def test_config_state_history_keys_reject_bad_values(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(f"[state]\n{text}\n")
