"""What the daemon does with a real worker's reply it cannot read."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.test_ingest_workers import Workers, ndjson, post


def test_a_worker_whose_reply_cannot_be_read_is_free_for_the_next_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the review: the worker of a reply that failed to unpickle was never given back, so
    # the pool had one worker less for good (with one, every later push waited forever)
    workers = Workers(tmp_path)
    failures = [AttributeError("Can't get attribute 'Prepared' on <module 'x'>")]

    def loads(data: bytes) -> Any:
        if failures:
            raise failures.pop()
        return pickle.loads(data)  # noqa: S301 - the real worker's reply

    # the one seam: the daemon's unpickling of replies (the worker is the real one)
    monkeypatch.setattr("server.logs.workers.pickle", SimpleNamespace(
        loads=loads, dumps=pickle.dumps, HIGHEST_PROTOCOL=pickle.HIGHEST_PROTOCOL))  # fmt: skip
    try:
        answer = post(workers.client, ndjson(1, 2))
        assert answer.status_code == 500, answer.get_data(as_text=True)
        assert workers.pool.busy() == 0
        assert post(workers.client, ndjson(3, 4)).status_code == 200
        assert (workers.pool.stats.jobs, workers.pool.stats.inline) == (2, 0)
        assert workers.messages() == ["m3", "m4"]
    finally:
        workers.close()
