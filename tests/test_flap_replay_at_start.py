"""The one-time flap replay fails: checks are written all the same, and the next start
tries it again.

An in-process daemon on a real embedded chDB with its real writer, driven by a pinned
clock (:class:`tests.test_storage_late_at_start.Run`). The failure is real: the store's
``flap_replays`` table gets a constraint no row meets, so the replay's last statement
(its mark) fails in ClickHouse while every table checks are written to takes rows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from checkers.base import Status
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from tests.support.receivers import HttpReceiver
from tests.test_storage_late_at_start import Run, setup

UNWRITABLE = "ALTER TABLE monitor.flap_replays ADD CONSTRAINT unwritable CHECK 0"


def test_a_replay_that_fails_leaves_checks_written_and_is_tried_once_a_start(
    tmp_path: Path, receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    config, clock = setup(tmp_path, receiver)
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    apply_schema(store, Target("monitor"))
    store.execute(UNWRITABLE)
    store.close()

    run = Run(config, clock, ready=True)  # storage readiness does not wait on the replay
    try:
        caplog.set_level(logging.WARNING, "lightbulb.daemon")
        for status in (Status.OK, Status.FAILED, Status.OK):
            run.result(status)
        run.tick()
        run.tick()
        failed = [r for r in caplog.records if "not replayed" in r.getMessage()]
        assert len(failed) == 1 and "unwritable" in failed[0].getMessage()
        rows = run.query("SELECT count() AS n FROM monitor.service_status")
        assert int(rows[0]["n"]) == 3
        marks = run.query("SELECT count() AS n FROM monitor.flap_replays")
        assert int(marks[0]["n"]) == 0  # left unmarked: the next start replays
        moves = run.query("SELECT count() AS n FROM monitor.service_transitions")
        assert int(moves[0]["n"]) == 2
    finally:
        run.stop()
