"""The demo shows each thing once: one tile per service, each log line through one path."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.storage.embedded import EmbeddedStorage
from server.validation import load_config
from server.web.queries import Reader
from tests.conftest import REPO, free_port, wait_until
from tests.support.receivers import HttpReceiver

DEMO = REPO / "examples" / "demo.yaml"


def test_every_demo_tile_has_its_own_name(tmp_path: Path) -> None:
    """The daemon's own row is "Lightbulb daemon"; the demo also watched the daemon's process
    under the same label, so the overview showed two tiles of that name."""
    config = load_config(DEMO, environ={})
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        labels = [v.label for v in Reader(store, config).known().values()]
    finally:
        store.close()
    assert len(labels) == len(set(labels)), labels


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[int, HttpReceiver, Path]]:
    receiver, port = HttpReceiver(), free_port()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "demo_worker.py"), "--port", str(port),
         "--dir", str(tmp_path), "--push", receiver.url + "/api/v1/logs"],
    )  # fmt: skip
    try:
        yield port, receiver, tmp_path / "worker.log"
    finally:
        process.kill()
        process.wait()
        receiver.close()


def test_the_demo_worker_sends_each_log_line_through_one_path(
    worker: tuple[int, HttpReceiver, Path],
) -> None:
    """Its job log is tailed from the file (demo-worker); only its access log is pushed."""
    port, receiver, log_file = worker

    def health() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    assert wait_until(health)
    assert health() and health()
    pushed = [r.json for r in receiver.wait_for(3)]
    assert wait_until(lambda: log_file.exists() and "job 1 " in log_file.read_text(), 15)
    assert {p["service_id"] for p in pushed} == {"demo-http"}
    assert all(p["message"].startswith("GET /health 200 in ") for p in pushed)
    written = log_file.read_text()
    assert "GET /health" not in written
    config = load_config(DEMO, environ={})
    tailed = {s.id for s in config.services if s.block().get("log_file")}
    assert tailed == {"demo-worker"}  # the pushed stream belongs to another service
