"""CPU the embedded engine spends per insert round, by schema and insert variant.

    python benchmarks/engine_rounds.py                         # every variant, 3 repeats
    python benchmarks/engine_rounds.py --variant base --variant nomv --rounds 40

A round is what the inserter does every ``insert_interval`` for 200 process
checks every 10 s with ``insert_interval: 5s``: one ``service_status`` insert
of 100 rows (feeding its materialized views) and one ``service_metrics`` insert
of 700 rows, each under a deduplication token, through
``EmbeddedStorage.insert_arrow``. Each variant runs in a fresh process on a
fresh database with the schema of ``sql/`` applied; rounds are ``--spacing``
apart (shorter than 5 s to keep the run short: background merges and cleanup
then run more often per second, the same per part), then the process waits
``--settle`` seconds so the merges the rounds caused are counted.

Printed per variant: CPU of the whole process per round (all threads, background
merges and cleanup included), of which the calling thread, the CPU per thread
name (10 ms ticks), the idle cost of the same span (with ``--idle``: measured
over that many seconds before the rounds, scaled), and the parts created. Variants
are run alternating, ``--repeats`` times; compare within one run only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, os, sys, tempfile, threading, time
from datetime import UTC, datetime, timedelta
sys.path.insert(0, sys.argv[1])
variant, rounds, spacing, settle = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
idle_window = float(sys.argv[6])
import pyarrow as pa
from server.schema import Target, apply_schema, declared_types
from server.storage.arrow import schema_of
from server.storage.embedded import EmbeddedStorage
from server.recorder import STATUS_COLUMNS, METRIC_COLUMNS
from benchmarks.engine_variants import ENGINE, VARIANTS
import server.storage.embedded as embedded
embedded.ENGINE_SETTINGS = "&".join([embedded.ENGINE_SETTINGS, *ENGINE.get(variant, ())])

from collections import Counter
def by_thread():
    ticks = Counter()
    for t in os.listdir("/proc/self/task"):
        try:
            name = open(f"/proc/self/task/{t}/comm").read().strip()
            f = open(f"/proc/self/task/{t}/stat").read().rpartition(")")[2].split()
        except OSError:
            continue
        ticks[name] += int(f[11]) + int(f[12])
    return ticks
def main_tid_cpu():
    fields = open(f"/proc/self/task/{threading.get_native_id()}/stat").read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

root = tempfile.mkdtemp(prefix="lb-engine-rounds-")
store = EmbeddedStorage(root, "monitor")
apply_schema(store, Target("monitor"))
insert = VARIANTS[variant](store)
types = declared_types()
st = schema_of(STATUS_COLUMNS, [types["service_status"][c] for c in STATUS_COLUMNS])
mt = schema_of(METRIC_COLUMNS, [types["service_metrics"][c] for c in METRIC_COLUMNS])
t0 = datetime.now(UTC)
def batches(r):
    at = t0 + timedelta(seconds=5 * r)
    status = [(f"p{i:05d}", at + timedelta(milliseconds=i), 0, "process 1234 running", "python_process",
               "bench", '{"pid":1234}', 1, 0.1, 12.5) for i in range(100)]
    metrics = [(f"p{i:05d}", at + timedelta(milliseconds=i), f"m{k}", float(k), "", {})
               for i in range(100) for k in range(7)]
    cols = lambda rows: list(zip(*rows))
    return (pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols(status), st)], schema=st),
            pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols(metrics), mt)], schema=mt))
for r in range(5):  # warm-up
    s, m = batches(r)
    insert("service_status", s); insert("service_metrics", m)
time.sleep(settle)
i0 = time.process_time()
time.sleep(idle_window)
idle = (time.process_time() - i0) / idle_window * (rounds * spacing + settle) if idle_window else 0.0
p0, c0, k0 = time.process_time(), main_tid_cpu(), by_thread()
fg = 0.0
for r in range(5, 5 + rounds):
    s, m = batches(r)
    a = time.thread_time()
    insert("service_status", s); insert("service_metrics", m)
    fg += time.thread_time() - a
    time.sleep(spacing)
time.sleep(settle)
total = time.process_time() - p0
threads = {k: v * 10 / rounds for k, v in (by_thread() - k0).most_common(8)}
parts = store.query("SELECT sum(m) AS n FROM (SELECT table, max(max_block_number) AS m "
                    "FROM system.parts WHERE database = 'monitor' GROUP BY table)")[0]["n"]
rows = store.query("SELECT count() AS n FROM monitor.service_status")[0]["n"]
live = store.query("SELECT countIf(active) AS a, countIf(NOT active) AS o FROM system.parts "
                   "WHERE database = 'monitor'")[0]
print(json.dumps({"variant": variant, "per_round_ms": total / rounds * 1000,
                  "idle_ms": idle / rounds * 1000, "caller_ms": fg / rounds * 1000,
                  "blocks": int(parts or 0), "rows": int(rows), "active": int(live["a"]),
                  "outdated": int(live["o"]), "threads": threads}))
"""  # noqa: E501 - the child script, kept readable as one block


def main() -> None:
    from benchmarks.engine_variants import VARIANTS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--spacing", type=float, default=0.5)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--idle", type=float, default=0.0, help="seconds of idle CPU measured first"
    )
    args = parser.parse_args()
    variants = args.variant or sorted(VARIANTS)
    print(f"load {Path('/proc/loadavg').read_text().strip()}", flush=True)
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for repeat in range(args.repeats):
        shift = repeat % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(REPO), variant, str(args.rounds),
                 str(args.spacing), str(args.settle), str(args.idle)],
                cwd=REPO, check=True, capture_output=True, text=True,
            )  # fmt: skip
            line = json.loads(out.stdout.strip().splitlines()[-1])
            results[variant].append(line)
            load = Path("/proc/loadavg").read_text().split()[0]
            print(f"  #{repeat + 1} {variant:14} {line['per_round_ms']:7.2f} ms/round "
                  f"(caller {line['caller_ms']:6.2f}, idle {line['idle_ms']:5.2f}, "
                  f"blocks {line['blocks']}, parts {line['active']}+{line['outdated']} "
                  f"outdated); load {load}\n      {line['threads']}", flush=True)  # fmt: skip
    for variant in variants:
        runs = results[variant]
        print(
            f"{variant:14} median {statistics.median(r['per_round_ms'] for r in runs):7.2f} "
            f"ms/round, caller {statistics.median(r['caller_ms'] for r in runs):6.2f}"
        )


if __name__ == "__main__":
    main()
