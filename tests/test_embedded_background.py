"""The embedded engine's background work: rare when idle, prompt after an insert.

Real chDB with the schema of ``sql/``. Wake-ups are counted from the kernel's
context-switch counters of the engine's threads, which do not depend on how
loaded the machine is (CPU time would).
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from server.recorder import STATUS_COLUMNS
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from tests.conftest import wait_until


def _engine_switches() -> int:
    """Context switches of every thread of this process but the main one."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        if tid == str(os.getpid()):
            continue
        try:
            with open(f"/proc/self/task/{tid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:  # the thread ended meanwhile
            continue
    return total


def test_an_idle_store_with_the_schema_wakes_a_few_times_a_second_not_a_hundred(
    store: EmbeddedStorage,
) -> None:
    # With the engine's default (look for work every 0.1 s when there is none, and
    # each table's 1 s cleanup counting as work) this was ~110 wake-ups a second.
    apply_schema(store, Target("monitor"))
    store.query("SELECT 1")  # every thread the session starts has started
    before, started = _engine_switches(), time.monotonic()
    # a window of wall time is what is measured here; no logic is waited for
    time.sleep(2.0)
    rate = (_engine_switches() - before) / (time.monotonic() - started)
    assert rate < 40, f"{rate:.0f} wake-ups a second"


def _status_rows(at: datetime, count: int) -> list[tuple[object, ...]]:
    return [(f"svc{i}", at + timedelta(milliseconds=i), 0, "ok", "python_process", "s", "{}",
             1, None, None) for i in range(count)]  # fmt: skip


def test_small_inserts_are_still_merged_and_their_old_parts_removed(
    store: EmbeddedStorage, tmp_path: Path
) -> None:
    apply_schema(store, Target("monitor"))
    at = datetime.now(UTC)
    for n in range(12):
        store.insert("service_status", STATUS_COLUMNS, _status_rows(at + timedelta(seconds=n), 20),
                     dedup_token=uuid.uuid4().hex)  # fmt: skip

    def parts() -> tuple[int, int]:
        row = store.query(
            "SELECT countIf(active) AS live, countIf(NOT active) AS old FROM system.parts "
            "WHERE database = 'monitor' AND table = 'service_status'"
        )[0]
        return int(row["live"]), int(row["old"])

    # 12 parts inserted: merged by the tasks the inserts woke, outdated ones removed
    assert wait_until(lambda: parts()[0] <= 3 and parts()[1] == 0, seconds=30), parts()
    total = store.query("SELECT count() AS n FROM monitor.service_status")[0]["n"]
    assert total == 240
