"""What the daemon's process does not load: numpy (pyarrow and chDB work without it),
Flask, Werkzeug, waitress and prometheus_client while its dashboard is off,
pyarrow's mimalloc pool, large per-thread caches in chDB's allocator, and the
pages of libraries that only start-up read."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

WRITE_AND_READ = """
from pathlib import Path
from server.schema import Target, apply_schema
from server.spool import Spool
from server.storage.embedded import EmbeddedStorage
from server.tables import WRITTEN_TABLES
from server.writer import Writer
from tests.test_writer import row

root = Path({root!r})
store = EmbeddedStorage(root / "db", "monitor")
apply_schema(store, Target("monitor"))
writer = Writer(store, Spool(root / "spool", 10**8), columns=WRITTEN_TABLES)
for i in range(3):
    writer.add("service_status", row(i, "caf\\u00e9"))
writer.flush()
n = store.query("SELECT count() AS n FROM monitor.service_status WHERE message = {{m:String}}",
                {{"m": "caf\\u00e9"}})[0]["n"]
print(n, "numpy" in sys.modules)
import pyarrow
print(pyarrow.default_memory_pool().backend_name)
print(max((int(b, 16) - int(a, 16)) >> 20 for a, b in
          (line.split()[0].split("-") for line in open("/proc/self/maps"))))
"""


# what importing ``server`` in this process set, which a fresh process sets itself
SET_BY_SERVER = {"ARROW_DEFAULT_MEMORY_POOL", "JE_MALLOC_CONF"}


def run(script: str, extra_env: dict[str, str] | None = None) -> list[str]:
    # as a fresh process would start: not with what importing ``server`` here set
    env = {k: v for k, v in os.environ.items() if k not in SET_BY_SERVER}
    env.update(extra_env or {})
    out = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=REPO, capture_output=True,
        text=True, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_the_embedded_write_path_stores_rows_without_importing_numpy(tmp_path: Path) -> None:
    # pyarrow (imported by chDB and by our writer) imports numpy when installed: 10-15 MB
    # of RSS for conversions we never make.
    script = "import sys\n" + textwrap.dedent(WRITE_AND_READ).format(root=str(tmp_path))
    assert run(script)[:2] == ["3", "False"]


def test_arrow_buffers_come_from_malloc_and_no_1_gib_arena_is_mapped(tmp_path: Path) -> None:
    # pyarrow's default mimalloc pool maps a 1 GiB arena and kept ~7.5 MB of it resident
    # in the daemon, for batches peaking at ~0.2 MB.
    script = "import sys\n" + textwrap.dedent(WRITE_AND_READ).format(root=str(tmp_path))
    _n, _numpy, pool, largest_mapping_mb = run(script)
    assert pool == "system"
    assert int(largest_mapping_mb) < 1024


@pytest.mark.parametrize("first", ["numpy", "server"])
def test_code_that_imports_numpy_itself_still_gets_it(tmp_path: Path, first: str) -> None:
    # Only pyarrow's own initialisation is refused numpy; anyone else importing it gets it.
    order = "import numpy, server" if first == "numpy" else "import server, pyarrow, numpy"
    script = f"import sys\n{order}\nprint(numpy.arange(3).sum())\n" + textwrap.dedent(
        WRITE_AND_READ
    ).format(root=str(tmp_path))
    assert run(script)[:3] == ["3", "3", "True"]


def test_the_embedded_engine_looks_at_its_memory_once_a_second(tmp_path: Path) -> None:
    # Its memory worker's default period (50-100 ms) cost ~2 ms of CPU a second, idle.
    from server.storage.embedded import EmbeddedStorage

    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        [row] = store.query(
            "SELECT value FROM system.server_settings WHERE name = 'memory_worker_period_ms'"
        )
    finally:
        store.close()
    assert row["value"] == "1000"


ENGINE_CACHES = """
import tempfile
import server
from server.storage.embedded import EmbeddedStorage

store = EmbeddedStorage(tempfile.mkdtemp(), "monitor")
[row] = store.query("SELECT * FROM system.jemalloc_stats")
print(*(line.split(":")[1].strip() for line in row["stats"].splitlines()
        if line.strip().startswith("opt.tcache_max:")))
store.close()
"""


def test_the_embedded_engines_thread_caches_hold_blocks_up_to_4_kib_only() -> None:
    # Its ~20 threads' caches of freed blocks (up to 32 KiB each by default) held ~10
    # MB at 1,000 services.
    assert run(ENGINE_CACHES) == ["4096"]


def test_a_malloc_conf_set_by_the_user_is_kept() -> None:
    assert run(ENGINE_CACHES, {"JE_MALLOC_CONF": "tcache_max:8192"}) == ["8192"]


DAEMON_WEB = """
import sys
from server.daemon import Daemon
daemon = Daemon(sys.argv[1])
daemon.web.open(daemon.config)
daemon.web.stop()
daemon.storage.close()
print(*(name in sys.modules for name in ("flask", "werkzeug", "waitress", "prometheus_client")))
"""


@pytest.mark.parametrize("enabled", [False, True])
def test_a_daemon_loads_the_web_stack_only_when_its_dashboard_is_on(
    tmp_path: Path, enabled: bool
) -> None:
    # ~8 MB of RSS and ~170 modules the daemon does not use with the dashboard off.
    from tests.conftest import free_port

    config = tmp_path / "lightbulb.yaml"
    config.write_text(
        f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\n"
        f"scheduler: {{spool_dir: {tmp_path / 'spool'}}}\n"
        f"dashboard: {{enabled: {str(enabled).lower()}, port: {free_port()}}}\n"
        "services: []\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", DAEMON_WEB, str(config)], check=False, cwd=REPO,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(enabled)] * 4


def pyarrow_resident_mb(pid: int) -> float:
    """Resident MB of the files under pyarrow's package directory in process ``pid``."""
    import pyarrow

    root = os.path.dirname(os.path.realpath(pyarrow.__file__)) + "/"
    kb, inside = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and ":" not in fields[0]:  # a mapping's header line
            inside = len(fields) >= 6 and fields[5].startswith(root)
        elif inside and fields[0] == "Rss:":
            kb += int(fields[1])
    return kb / 1024


def test_a_started_daemon_holds_only_the_pyarrow_pages_its_writes_use(tmp_path: Path) -> None:
    # Importing pyarrow maps ~26 MB of its libraries (kernel and type registries); a
    # daemon's Arrow writes use ~8 MB of them. Once started it gives the rest back, and
    # writes on (the pages its work needs come back from the page cache).
    from server.storage.embedded import EmbeddedStorage
    from tests.conftest import free_port
    from tests.support.daemon import DaemonProcess

    config = tmp_path / "lightbulb.yaml"
    config.write_text(
        f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\n"
        f"scheduler: {{spool_dir: {tmp_path / 'spool'}, flush_interval: 200ms,"
        " insert_interval: 200ms}\n"
        f"dashboard: {{port: {free_port()}}}\n"
        "services:\n  - {id: here, type: host, interval: 1s}\n"
    )
    daemon = DaemonProcess(config, tmp_path)
    try:
        daemon.wait_for(r"start-up over: [\d.]+ MB of library pages given back")
        daemon.wait_for_checks("here", 3)
        held = pyarrow_resident_mb(daemon.proc.pid)
        code, _took = daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.kill()
    assert code == 0, daemon.output[-3000:]
    # 8.3 MB when pyarrow's files were read from disk; 15.5 MB right after pip wrote them
    # (a fresh CI machine): the page cache then holds them in large folios, and a touch
    # maps a whole folio back. Without the give-back: ~26 MB either way.
    assert held < 20, held
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        [row] = store.query("SELECT count() AS n FROM monitor.service_status "
                            "WHERE service_id = 'here'")  # fmt: skip
    finally:
        store.close()
    assert row["n"] >= 3
