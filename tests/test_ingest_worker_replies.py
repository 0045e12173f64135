"""What the daemon does with a real worker's reply it cannot read, or a request it has
no memory for: the worker is free for the next request either way."""

from __future__ import annotations

import contextlib
import pickle
import resource
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from server.logs.prepare import Job
from server.logs.workers import IngestPool
from server.recorder import TABLE_COLUMNS
from server.schema import declared_types
from server.storage.arrow import schema_of
from server.validation import parse_config
from tests.conftest import wait_until
from tests.test_ingest_workers import Workers, ndjson, post
from tests.test_log_ingest import CONFIG


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


def vm_bytes() -> int:
    """This process's virtual memory size (``VmSize``), what ``RLIMIT_AS`` bounds."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")


@contextlib.contextmanager
def memory_short_of(nbytes: int) -> Iterator[None]:
    """The process may map no more than ``nbytes`` beyond what it maps now (a real
    MemoryError for any allocation past that)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_a_request_the_daemon_has_no_memory_for_leaves_every_worker_to_the_next() -> None:
    pool = IngestPool(2, 8, inline_below=0)
    pool.start()
    try:
        assert wait_until(lambda: len(pool.pids()) == 2, 60), "workers not started"
        config = parse_config(CONFIG, "t.yaml", {})
        types = declared_types()["service_logs"]
        cols = TABLE_COLUMNS["service_logs"]
        schema = schema_of(cols, [types[c] for c in cols])

        def job(body: bytes) -> Job:
            return Job("ndjson", body, "application/x-ndjson", "t", datetime.now(UTC))

        huge = job(b"x" * (200 << 20))  # pickling it for a worker needs 200 MiB more
        for _ in range(3):  # one leaked worker a time would leave none after two
            with memory_short_of(64 << 20), pytest.raises(MemoryError):
                pool.prepare(huge, config, schema)
            assert pool.busy() == 0
        prepared = pool.prepare(job(ndjson(1, 2)), config, schema)
        assert prepared.rows.num_rows == 2
        assert (pool.stats.jobs, pool.stats.inline) == (1, 0)  # by a worker, not inline
    finally:
        pool.stop()
