"""The wheel carries every template, static file and schema file, inside ``server``.

(The installed wheel itself is smoke-tested by ``.ci/installed-smoke``.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from server.resources import sql_dir, templates_dir
from tests.conftest import REPO


def test_wheel_ships_templates_static_files_and_sql_as_package_data(tmp_path: Path) -> None:
    # from a clean copy: a stale lightbulb.egg-info in the checkout lists files of its own
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".venv", "*.egg-info", "build", "dist", "var", ".git", "__pycache__", ".*_cache"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
         str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("lightbulb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("templates", "sql"):
        shipped = {
            f"server/{folder}/{p.relative_to(REPO / folder).as_posix()}"
            for p in (REPO / folder).rglob("*")
            if p.is_file()
        }
        assert shipped and shipped <= names, sorted(shipped - names)
    top_level = {name.split("/")[0] for name in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"server", "checkers"}


def test_package_data_is_found_through_the_package_not_the_checkout() -> None:
    assert (templates_dir() / "base.html").is_file()
    assert (templates_dir() / "static" / "lightbulb.css").is_file()
    assert (sql_dir() / "010_service_status.sql").is_file()
    assert templates_dir().parent.name == "server" and sql_dir().parent.name == "server"
