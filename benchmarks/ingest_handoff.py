"""CPU a pushed request costs the daemon's process: prepared inline, or handed off.

For requests of 1 to 1,000 records (the benchmark's NDJSON and OTLP bodies), this
process's CPU (``time.process_time``: every thread, so an executor's queue and result
threads count; not the workers') per request, lower quartile of ``--repeat``
requests, interleaved:

- inline: :func:`server.logs.prepare.prepare` in this thread (``logs.workers: 0``);
- pool: :class:`server.logs.workers.IngestPool` (a worker per socket, the daemon's
  design): pickling the job, the round trip, reading the reply's Arrow IPC back;
- executor: ``concurrent.futures.ProcessPoolExecutor`` (spawn) running the same
  worker function, for comparison (its queue and result threads cost the caller too).

Decides :data:`server.logs.workers.INLINE_BELOW` and the design.

    .venv/bin/python benchmarks/ingest_handoff.py [--repeat 60]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import ingest as bench  # noqa: E402
from server.logs.prepare import NDJSON, OTLP, PROTOBUF, Job, Settings, prepare  # noqa: E402
from server.logs.worker import answer  # noqa: E402
from server.logs.workers import IngestPool  # noqa: E402
from server.schema import declared_types  # noqa: E402
from server.storage.arrow import from_ipc, schema_of  # noqa: E402
from server.tables import WRITTEN_TABLES  # noqa: E402
from server.validation import parse_config  # noqa: E402

CONFIG = "logs:\n  tokens: {b: bench}\n  max_records: 10000\nservices:\n" + "".join(
    f"  - {{id: svc{i}, type: host}}\n" for i in range(bench.SERVICES)
)


def _executor_job(job: Job, settings: Settings) -> tuple[Any, ...]:
    return answer(job, settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=60)
    args = parser.parse_args()
    config = parse_config(CONFIG, "bench.yaml", {})
    columns = WRITTEN_TABLES["service_logs"]
    types = declared_types()["service_logs"]
    schema = schema_of(columns, [types[c] for c in columns])
    settings = Settings.of(config, schema)
    pool = IngestPool(1, 8, inline_below=0)
    pool.start()
    executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    while not pool.pids():
        time.sleep(0.1)
    executor.submit(_executor_job, Job(NDJSON, b"", "", "", datetime.now(UTC)), settings).result()

    def submit(job: Job) -> bytes:
        return bytes(executor.submit(_executor_job, job, settings).result()[1])

    def ways(job: Job) -> dict[str, Any]:
        return {
            "inline": lambda: prepare(job, settings),
            "pool": lambda: pool.prepare(job, config, schema),
            "executor": lambda: from_ipc(submit(job)),
        }

    print(f"this process's CPU per request, µs (lower quartile of {args.repeat})")
    print("| format | records | inline | pool | executor |\n|---|---|---|---|---|")
    for fmt in (NDJSON, OTLP):
        for records in (1, 3, 10, 100, 1000):
            bench.RECORDS = records
            body = (bench.ndjson_body if fmt == NDJSON else bench.otlp_body)(1)
            job = Job(fmt, body, PROTOBUF if fmt == OTLP else "application/x-ndjson", "b",
                      datetime.now(UTC))  # fmt: skip
            times: dict[str, list[float]] = {}
            for _ in range(args.repeat):
                for name, run in ways(job).items():
                    started = time.process_time()
                    run()
                    times.setdefault(name, []).append((time.process_time() - started) * 1e6)
            quartile = {k: sorted(v)[len(v) // 4] for k, v in times.items()}
            print(f"| {fmt} | {records} ({len(body):,} B) | {quartile['inline']:,.0f} | "
                  f"{quartile['pool']:,.0f} | {quartile['executor']:,.0f} |")  # fmt: skip
    pool.stop()
    executor.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
