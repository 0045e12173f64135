"""deploy/lightbulb.service: valid for systemd, hardened to an exposure of 2.0 or better.

Runs ``systemd-analyze verify`` and ``systemd-analyze security --offline`` on the
unit (with ExecStart pointed at this venv's ``lightbulb``, which exists here).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, require_binary

UNIT = REPO / "deploy" / "lightbulb.service"
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    require_binary(ANALYZE, "systemd")
    here = str(Path(sys.executable).parent / "lightbulb")
    path = tmp_path / "lightbulb.service"
    path.write_text(UNIT.read_text().replace("/opt/lightbulb/venv/bin/lightbulb", here))
    return path


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_unit_verifies_cleanly(unit: Path) -> None:
    done = analyze("verify", str(unit))
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_the_unit_is_rated_2_0_or_better_by_systemd_analyze_security(unit: Path) -> None:
    # --threshold is on systemd's 0-100 scale: 20 is the displayed 2.0
    done = analyze("security", "--offline=true", "--threshold=20", str(unit))
    overall = [line for line in done.stdout.splitlines() if "Overall exposure" in line]
    assert done.returncode == 0, overall or done.stderr
    score = float(overall[0].split(":")[1].split()[0])
    assert score <= 2.0


def test_checks_keep_the_whole_of_proc_and_signals() -> None:
    """python_process reads other processes' /proc entries; reload and stop are signals."""
    settings = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert "ProtectProc" not in settings and "ProcSubset" not in settings
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "@signal" not in UNIT.read_text()  # kill(2) is never filtered
    assert settings["StateDirectory"] == "lightbulb" and settings["ProtectSystem"] == "strict"
