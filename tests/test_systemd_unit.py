from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "config" / "systemd" / "progressd.service"
ANALYZE = shutil.which("systemd-analyze")


def verify(tmp_path: Path, text: str) -> str:
    """``systemd-analyze verify`` output about the unit (it exits 0 on ignored bad keys)."""
    progressd = Path(sys.executable).with_name("progressd")
    unit = tmp_path / "progressd.service"
    unit.write_text(text.replace("/usr/local/bin/progressd", str(progressd)))
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    lines = (result.stdout + result.stderr).splitlines()
    problems = [line for line in lines if "progressd.service" in line]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}")
    return "\n".join(problems)


def test_systemd_unit_declares_the_service_contract() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service = parser["Service"]
    assert service["Type"] == "notify"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["WatchdogSec"] and service["RuntimeDirectory"] == "progressd"
    assert service["StateDirectory"] == "progressd"
    for option in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[option] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert "serve --config /etc/progressd/progressd.toml" in service["ExecStart"]


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert verify(tmp_path, UNIT.read_text()) == ""


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("WatchdogSec=30s", "WatchdogSec=soon\nProtectEverything=yes")
    problems = verify(tmp_path, broken)
    assert "ProtectEverything" in problems
    assert "WatchdogSec" in problems or "sec value" in problems
