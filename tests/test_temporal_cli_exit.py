"""``lightbulb check`` on Temporal types always exits, with its Nagios code, after printing.

temporalio's Rust runtime (1.35, Python 3.11) sometimes aborts or hangs while it is
dropped at interpreter shutdown; the command must leave before that can happen.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from server.commands.check import NAGIOS_EXIT, NAGIOS_UNKNOWN
from server.core.status import Status
from tests.conftest import REPO, free_port
from tests.support.temporal_server import Harness
from tests.test_daemon import write_config

RUNS = 12
BOUND = 60.0  # seconds for one run on a loaded 2-core machine (start, connect, check, exit)


def test_check_on_temporal_types_exits_with_its_code_every_time(
    temporal_server: Harness, tmp_path: Path
) -> None:
    down = f"127.0.0.1:{free_port()}"
    config = write_config(
        tmp_path,
        "  - {id: count, type: temporal_count, timeout: 10s, temporal_count: "
        f"{{address: '{temporal_server.address}', count_query: \"TaskQueue = 'exit-test'\"}}}}\n"
        "  - {id: stuck, type: temporal_stuck, timeout: 10s, temporal_stuck: "
        f"{{address: '{temporal_server.address}', query: \"TaskQueue = 'exit-test'\"}}}}\n"
        "  - {id: down, type: temporal_task_queue, timeout: 2s, temporal_task_queue: "
        f"{{address: '{down}', task_queue: q}}}}\n",
    )
    expected = {
        "count": NAGIOS_EXIT[Status.OK],
        "stuck": NAGIOS_EXIT[Status.OK],
        "down": NAGIOS_UNKNOWN,
    }
    seen = []
    for run in range(RUNS):
        service = list(expected)[run % len(expected)]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "check", service, "--config", str(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=BOUND,
            check=False,
        )
        seen.append((service, done.returncode, round(time.monotonic() - started, 1)))
        assert done.stdout.startswith(f"{service}: "), (seen, done.stdout, done.stderr)
        assert "Fatal Python error" not in done.stderr, (seen, done.stderr)
        assert done.returncode == expected[service], (seen, done.stdout, done.stderr)
