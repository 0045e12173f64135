"""Pushed logs prepared by real ingest worker processes: counts, masking, lost workers,
the queue's 429, and no worker outliving its daemon."""

from __future__ import annotations

import gc
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pytest
import requests
from flask.testing import FlaskClient
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from server.core import redact
from server.logs import worker
from server.logs.workers import IngestPool
from server.validation import parse_config
from server.web import WebContext, create_app
from tests.conftest import free_port, wait_until
from tests.support.clock import FakeClock
from tests.support.daemon import DaemonProcess
from tests.test_daemon import no_leaked_daemons, write_config
from tests.test_log_ingest import CONFIG, TOKEN, Pipeline

__all__ = ["no_leaked_daemons"]
SECRET = "Sup3rSecretHookKey-77"


class Workers:
    """A real pipeline (app, writer, chDB) whose pushes all go to worker processes."""

    def __init__(self, root: Path, workers: int = 1, queue: int = 8, **pool: Any) -> None:
        self.pipeline = Pipeline(root)
        self.pool = IngestPool(workers, queue, inline_below=0, **pool)
        self.pool.start()
        assert wait_until(lambda: len(self.pool.pids()) == workers, 60), "workers not started"
        self.client = self.app()

    def app(self, extra: str = "") -> FlaskClient:
        """A client on the same store, writer and pool; a new config is a reload for the pool."""
        config = parse_config(CONFIG + "  tokens: {shipper: push-t0ken}\n" + extra, "t.yaml", {})
        context = WebContext(config, self.pipeline.store, FakeClock(), sink=self.pipeline.writer,
                             ingest=self.pool)  # fmt: skip
        return create_app(context).test_client()

    def messages(self) -> list[str]:
        rows = self.pipeline.rows("SELECT message FROM monitor.service_logs")
        return [r["message"] for r in rows]

    def close(self) -> None:
        """Stop the workers, then the store."""
        self.pool.stop()
        self.pipeline.store.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    w = Workers(tmp_path)
    yield w
    w.close()


def ndjson(*ids: int, **fields: Any) -> bytes:
    return b"\n".join(json.dumps({
        "timestamp": "2026-11-22T11:59:00Z", "service_id": "api", "level": "INFO",
        "message": f"m{n}", **fields,
    }).encode() for n in ids)  # fmt: skip


def otlp(*ids: int) -> bytes:
    records = [LogRecord(time_unix_nano=1_795_348_740 * 10**9, severity_number=9,
                         body=AnyValue(string_value=f"m{n}")) for n in ids]  # fmt: skip
    resource = Resource(attributes=[KeyValue(key="service.name",
                                             value=AnyValue(string_value="api"))])  # fmt: skip
    group = ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=records)])
    return ExportLogsServiceRequest(resource_logs=[group]).SerializeToString()


def post(client: FlaskClient, body: bytes, *, proto: bool = False) -> Any:
    if proto:
        return client.post("/v1/logs", data=body,
                           headers={**TOKEN, "Content-Type": "application/x-protobuf"})  # fmt: skip
    return client.post("/api/v1/logs", data=body, headers=TOKEN)


def test_records_prepared_by_a_worker_are_stored_once_each_ndjson_and_otlp(
    workers: Workers,
) -> None:
    accepted = []
    for batch in range(6):
        ids = range(batch * 40, batch * 40 + 40)
        answer = post(workers.client, otlp(*ids) if batch % 2 else ndjson(*ids),
                      proto=bool(batch % 2))  # fmt: skip
        assert answer.status_code == 200, answer.get_data(as_text=True)
        accepted.extend(f"m{n}" for n in ids)
    assert workers.pool.stats.jobs == 6
    assert workers.pool.stats.inline == 0
    assert sorted(workers.messages()) == sorted(accepted)


def test_a_worker_refuses_a_bad_body_with_the_daemons_own_answer(workers: Workers) -> None:
    answer = post(workers.client, b"\x00not protobuf" * 10, proto=True)
    assert answer.status_code == 400
    assert "not an OTLP ExportLogsServiceRequest" in answer.get_data(as_text=True)
    mixed = post(workers.client, ndjson(1) + b"\n" + ndjson(2, level="LOUD"))
    assert mixed.status_code == 200
    assert mixed.json["accepted"] == 1 and mixed.json["rejected"] == 1
    dlq = workers.pipeline.rows("SELECT reason FROM monitor.log_dlq")
    assert len(dlq) == 1 and "level" in dlq[0]["reason"]
    limit = 50  # more records than logs.max_records (CONFIG's): 413
    over = post(workers.client, ndjson(*range(limit + 1)))
    assert over.status_code == 413 and f"{limit + 1} records" in over.get_data(as_text=True)
    assert (workers.pool.stats.jobs, workers.pool.stats.inline) == (3, 0)  # all by the worker


def test_a_secret_in_a_record_is_masked_by_the_worker_and_one_learned_at_reload_too(
    workers: Workers,
) -> None:
    held = redact.hold()
    try:
        redact.learn([SECRET])
        held.keep()
        context = {"header": f"Bearer {SECRET}", SECRET: "as a key"}
        answer = post(workers.client, ndjson(1, message=f"token {SECRET} refused",
                                             context=context))  # fmt: skip
        assert answer.status_code == 200
        # a reload: a new config, and a secret the daemon learned with it
        redact.learn(["An0therSecretAfterReload"])
        held.keep()
        reloaded = workers.app("  unknown_services: reject\n")
        answer = post(reloaded, ndjson(2, message="An0therSecretAfterReload and " + SECRET)
                      + b"\n" + ndjson(3, service_id="nobody"))  # fmt: skip
        assert answer.status_code == 200
        assert answer.json["rejected"] == 1  # the reloaded config reached the worker
        # a secret learned with no new config (a token rotated in the environment)
        redact.learn(["Th1rdSecretNoReload"])
        held.keep()
        answer = post(reloaded, ndjson(4, message="Th1rdSecretNoReload here"))
        assert answer.status_code == 200
    finally:
        held.release()
    rows = workers.pipeline.rows("SELECT message, toString(context) AS c "
                                 "FROM monitor.service_logs ORDER BY message")  # fmt: skip
    stored = json.dumps(rows)
    assert SECRET not in stored and "An0therSecret" not in stored, stored
    assert "Th1rdSecret" not in stored, stored
    assert [r["message"] for r in rows] == [
        "<secret> and <secret>", "<secret> here", "token <secret> refused"]  # fmt: skip
    assert workers.pool.stats.jobs == 3


def _stopped_worker(pool: IngestPool) -> int:
    """Stop the only worker (SIGSTOP): a request sent to it waits until we act."""
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGSTOP)
    return pid


def _post_in_thread(client: FlaskClient, body: bytes) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(post(client, body)), daemon=True)
    thread.start()
    return thread, answers


def test_a_worker_killed_before_reading_its_request_passes_it_on_and_it_is_stored_once(
    workers: Workers,
) -> None:
    # sent to a stopped worker, the request sits unread in its socket; killed, the worker
    # never had it (the socket says so: reset, not end of stream), so it goes elsewhere
    # instead of costing the client a 503 (a worker that read a request and died, or
    # hung, still costs it one: the reply timeout test, the stream test below)
    assert post(workers.client, ndjson(1, 2)).status_code == 200
    pid = _stopped_worker(workers.pool)
    thread, answers = _post_in_thread(workers.client, ndjson(10, 11, 12))
    assert wait_until(lambda: workers.pool.busy() == 1)
    os.kill(pid, signal.SIGKILL)
    thread.join(30)
    assert answers and answers[0].status_code == 200, answers
    assert workers.pipeline.writer.stats.busy_refusals == 0
    assert sorted(workers.messages()) == ["m1", "m10", "m11", "m12", "m2"]
    assert workers.pool.stats.worker_exits == 1
    assert wait_until(lambda: workers.pool.pids() not in ([], [pid]), 60)


def test_workers_that_died_while_idle_cost_no_request_a_503(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the attacker's finding: two workers killed while idle, the next two requests 503
    w = Workers(tmp_path, workers=2)
    try:
        assert post(w.client, ndjson(1)).status_code == 200
        dead = [psutil.Process(pid) for pid in w.pool.pids()]
        for proc in dead:
            proc.kill()
        # dead, not reaped (the pool reaps its children): zombies
        assert wait_until(lambda: all(p.status() == "zombie" for p in dead), 10)
        answers = [post(w.client, ndjson(2)), post(w.client, otlp(3), proto=True)]
        assert [a.status_code for a in answers] == [200, 200], [a.get_data() for a in answers]
        assert w.pipeline.writer.stats.busy_refusals == 0
        assert w.pool.stats.worker_exits == 2
        assert sorted(w.messages()) == ["m1", "m2", "m3"]
        lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
        assert len(lost) == 2 and all("killed by SIGKILL" in m for m in lost), lost
        assert all("no request had reached it" in m for m in lost), lost
        # replacements start and take requests again
        assert wait_until(lambda: len(w.pool.pids()) == 2 and not set(w.pool.pids()) & {
            p.pid for p in dead}, 60)  # fmt: skip
        jobs = w.pool.stats.jobs
        assert post(w.client, ndjson(4)).status_code == 200
        assert w.pool.stats.jobs == jobs + 1
    finally:
        w.close()


def test_a_worker_silent_past_the_reply_timeout_answers_503_and_is_replaced(
    tmp_path: Path,
) -> None:
    w = Workers(tmp_path, reply_timeout=1.0)
    try:
        pid = _stopped_worker(w.pool)  # alive but never answering
        answer = post(w.client, ndjson(7))
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
        assert "nothing of it was stored" in answer.get_data(as_text=True)
        assert wait_until(lambda: w.pool.pids() not in ([], [pid]), 60)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        assert post(w.client, ndjson(8)).status_code == 200
        assert w.messages() == ["m8"]
        assert w.pool.stats.worker_exits == 1
    finally:
        w.close()


def test_every_worker_busy_and_the_queue_full_answers_429_with_retry_after(
    tmp_path: Path,
) -> None:
    w = Workers(tmp_path, workers=1, queue=0)
    try:
        pid = _stopped_worker(w.pool)
        thread, first = _post_in_thread(w.client, ndjson(1))
        assert wait_until(lambda: w.pool.busy() == 1)
        waiter, second = _post_in_thread(w.client, ndjson(2))
        waiter.join(10)  # refused at once, not queued behind the stopped worker
        assert second, "a request beyond the queue waited instead of being refused"
        refused = second[0]
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert w.pool.stats.queue_refusals == 1
        assert w.pipeline.writer.stats.busy_refusals == 1
        os.kill(pid, signal.SIGCONT)
        thread.join(30)
        assert first and first[0].status_code == 200
        assert w.messages() == ["m1"]
    finally:
        w.close()


def test_workers_killed_under_a_stream_lose_no_acknowledged_record_and_duplicate_none(
    tmp_path: Path,
) -> None:
    w = Workers(tmp_path, workers=2)
    w.pipeline.writer.start()  # inserting as it goes: the 1 MiB spool would fill up
    acked: list[str] = []
    odd: list[str] = []  # answers other than 200, 429 and 503
    lock = threading.Lock()
    stop = threading.Event()

    def push(first: int) -> None:
        client = w.app()
        n = first
        while not stop.is_set():
            ids = list(range(n, n + 30))
            n += 30
            answer = post(client, ndjson(*ids))
            if answer.status_code == 200:
                with lock:
                    acked.extend(f"m{i}" for i in ids)
            elif answer.status_code not in (429, 503):
                odd.append(f"{answer.status_code} {answer.get_data(as_text=True)[:300]}")

    pushers = [threading.Thread(target=push, args=(k * 10**6,), daemon=True) for k in range(3)]
    try:
        for p in pushers:
            p.start()
        for _ in range(4):  # kill a worker while it prepares a request, four times
            assert wait_until(lambda: w.pool.pids(busy=True) and len(w.pool.pids()) == 2, 60), (
                odd, w.pool.stats)  # fmt: skip
            pid = w.pool.pids(busy=True)[0]
            os.kill(pid, signal.SIGKILL)
            assert wait_until(lambda p=pid: p not in w.pool.pids() and len(w.pool.pids()) == 2, 60)
        stop.set()
        for p in pushers:
            p.join(30)
        w.pipeline.writer.stop()
        stored = w.messages()
        assert not odd
        assert len(stored) == len(set(stored)), "a record was stored twice"
        assert sorted(stored) == sorted(acked)
        assert w.pool.stats.worker_exits == 4
    finally:
        stop.set()
        w.close()


def _workers_of(daemon: DaemonProcess, count: int) -> list[psutil.Process]:
    parent = psutil.Process(daemon.proc.pid)

    def found() -> list[psutil.Process]:
        return [p for p in parent.children(recursive=True)
                if "server.logs.worker" in " ".join(p.cmdline())]  # fmt: skip

    assert wait_until(lambda: len(found()) == count, 60), daemon.output[-3000:]
    return found()


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_no_worker_outlives_its_daemon(tmp_path: Path, how: str) -> None:
    port = free_port()
    config = write_config(tmp_path, "  - {id: api, type: host, interval: 1h}\n", port=port,
                          extra="logs:\n  tokens: {t: t0k3n}\n  workers: 2\n")  # fmt: skip
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("dashboard and API")
    assert not psutil.Process(daemon.proc.pid).children(), "a worker before any push"
    answer = requests.post(f"http://127.0.0.1:{port}/api/v1/logs", data=ndjson(*range(20)),
                           headers={"Authorization": "Bearer t0k3n"}, timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text  # the first push big enough starts them
    found = _workers_of(daemon, 2)
    if how == "kill -9":
        daemon.kill()
    else:
        code, took = daemon.stop()
        assert code == 0 and took < 10
    _gone, alive = psutil.wait_procs(found, timeout=10)
    assert not alive, f"workers left running after {how} of the daemon: {alive}"


def test_a_worker_that_cannot_start_is_tried_again_until_one_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the review: after one failed start the supervisor slept until a worker was lost,
    # which cannot happen with none running: every push stayed in the daemon for good
    monkeypatch.setattr("server.logs.workers.RESTART_PAUSE", 0.2)
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "no-such-python"))  # the start fails
    pool = IngestPool(1, 8, inline_below=0)
    pool.start()
    try:
        assert wait_until(lambda: pool.stats.start_failures >= 1, 60)
        assert pool.pids() == []
        monkeypatch.delenv("PYTHONHOME")  # the cause mended: the next attempt starts one
        assert wait_until(lambda: len(pool.pids()) == 1, 60), pool.stats
    finally:
        pool.stop()


def _starting_worker() -> psutil.Process:
    """The worker process this test's pool is starting (it takes a second or more to
    import, so it is found before it is ready)."""
    me = psutil.Process()

    def worker(process: psutil.Process) -> bool:
        try:
            return "server.logs.worker" in " ".join(process.cmdline())
        except psutil.Error:  # another test's child, exited and not reaped yet
            return False

    def found() -> list[psutil.Process]:
        return [p for p in me.children() if worker(p)]

    assert wait_until(lambda: len(found()) == 1, 60)
    return found()[0]


def test_a_worker_that_dies_while_starting_is_logged_with_how_it_ended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # it said "worker exited with None": the socket's end read before the exit was reaped
    pool = IngestPool(1, 8, inline_below=0)
    pool.start()
    try:
        _starting_worker().send_signal(signal.SIGKILL)
        assert wait_until(lambda: pool.stats.start_failures == 1, 60)
        said = [r.getMessage() for r in caplog.records if r.name == "lightbulb.ingest"]
        assert said and "it ended before it was ready: killed by SIGKILL" in said[0], said
    finally:
        pool.stop()


def test_stopping_the_pool_while_a_worker_starts_is_no_failure_and_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = IngestPool(1, 8, inline_below=0)
    pool.start()
    worker = _starting_worker()
    pool.stop()
    assert pool._thread is not None
    pool._thread.join(30)
    assert not pool._thread.is_alive()
    assert pool.stats.start_failures == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    _gone, alive = psutil.wait_procs([worker], timeout=10)
    assert not alive


def test_a_sigterm_to_the_daemons_process_group_leaves_its_workers_to_it(tmp_path: Path) -> None:
    # a service manager or a shell signalling the whole group (systemd's default
    # control-group stop, `kill -- -PGID`, Ctrl-C) reached the workers too: one still
    # importing died, and the stopping daemon logged "cannot start an ingest worker
    # (worker exited with None)"
    port = free_port()
    config = write_config(tmp_path, "  - {id: api, type: host, interval: 1h}\n", port=port,
                          extra="logs:\n  tokens: {t: t0k3n}\n  workers: 2\n")  # fmt: skip
    daemon = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "run", "--config", str(config)],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert daemon.stdout is not None
        for line in daemon.stdout:
            if "dashboard and API" in line:
                break
        answer = requests.post(f"http://127.0.0.1:{port}/api/v1/logs", data=ndjson(*range(20)),
                               headers={"Authorization": "Bearer t0k3n"}, timeout=30)  # fmt: skip
        assert answer.status_code == 200, answer.text  # it starts the workers
        parent = psutil.Process(daemon.pid)
        assert wait_until(lambda: len(parent.children()) == 2, 60)
        workers = parent.children()
        assert {os.getpgid(w.pid) for w in workers}.isdisjoint({os.getpgid(daemon.pid)})
        os.killpg(daemon.pid, signal.SIGTERM)  # while they import, most likely
        output, _ = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, output
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    assert "WARNING" not in output and "ERROR" not in output and "Traceback" not in output, output


def test_a_worker_freezes_its_start_up_objects_before_it_says_it_is_ready() -> None:
    # a worker's full collections walked every object its imports left, ~19 ms in the
    # middle of a request (benchmarks/ingest.py --format otlp: the p99's spikes)
    ours, theirs = socket.socketpair()
    daemon_end, worker_end = Connection(os.dup(ours.fileno())), Connection(os.dup(theirs.fileno()))
    ours.close()
    theirs.close()
    gc.unfreeze()  # whatever froze this process before is not what is counted
    server = threading.Thread(target=worker.serve, args=(worker_end,), daemon=True)
    server.start()
    try:
        assert daemon_end.poll(30), "no greeting"
        assert pickle.loads(daemon_end.recv_bytes()) == worker.READY  # noqa: S301 - our own worker
        assert gc.get_freeze_count() > 1000  # this process's start-up: pytest and the app
    finally:
        daemon_end.close()  # the worker reads EOF and returns
        server.join(10)
        worker_end.close()
        gc.unfreeze()
    assert not server.is_alive()


def test_the_settings_for_workers_are_made_again_only_when_the_secrets_change() -> None:
    # the generation was compared with `is`: past 256 (CPython's small ints) every
    # request re-made and re-pickled the settings, as if the secrets had changed
    pool = IngestPool(0, 0)
    config = parse_config(CONFIG, "lb.yaml")
    schema = pa.schema([("message", pa.string())])
    before = redact.masked()
    try:
        for _ in range(300):
            redact.load(["s3cret-value-one"])
        made = pool._current(config, schema)[1]
        assert pool._current(config, schema)[1] == made  # nothing changed: the same
        redact.load(["s3cret-value-two"])
        assert pool._current(config, schema)[1] == made + 1
    finally:
        redact.load(before.values)
