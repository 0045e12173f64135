"""CPU and RSS of one embedded insert, by how the batch reaches chDB.

    python benchmarks/inserts.py                 # 20, 200 and 5,000 rows, 30 inserts each

Each variant runs in a fresh process (RSS is per process): ``python`` is chDB's
``Python()`` table function over a pyarrow table (it needs pandas importable,
which pyarrow and chDB then load); ``file`` is what the embedded backend does
now: the same table written as Arrow IPC to a file the engine reads with
``file(path, 'ArrowStream')``, with pandas kept out (``server.storage.arrow``).
CPU is the whole process's (all engine threads) per insert, after one warm-up.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import datetime as dt, os, resource, sys, tempfile, time
mode, n, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if mode == "file":
    import server.storage.arrow  # keeps pyarrow from importing pandas
import pyarrow as pa
from chdb import session
d = tempfile.mkdtemp(prefix="lb-inserts-")
s = session.Session(d)
s.query("CREATE TABLE default.t (service_id LowCardinality(String), "
        "timestamp DateTime64(3, 'UTC'), status_code UInt8, message String, "
        "details Map(String, String), rt Nullable(UInt32)) "
        "ENGINE = MergeTree ORDER BY (service_id, timestamp)")
schema = pa.schema([("service_id", pa.string()), ("timestamp", pa.timestamp("ms", tz="UTC")),
                    ("status_code", pa.uint8()), ("message", pa.string()),
                    ("details", pa.map_(pa.string(), pa.string())), ("rt", pa.uint32())])
now = dt.datetime.now(dt.UTC)
rows = [(f"svc{i}", now, 0, "HTTP 200 in 3 ms", {"code": "200"}, 3) for i in range(n)]
table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(zip(*rows), schema)],
                             schema=schema)
path = os.path.join(d, "batch.arrow")
def insert():
    if mode == "python":
        batch = table
        s.query("INSERT INTO default.t SETTINGS max_insert_threads = 1 "
                "SELECT * FROM Python(batch)")
    else:
        with open(path, "wb") as out, pa.ipc.new_stream(out, table.schema) as w:
            w.write_table(table)
        s.query("INSERT INTO default.t SETTINGS max_insert_threads = 1 "
                f"SELECT * FROM file('{path}', 'ArrowStream')")
insert()
t0 = time.process_time()
for _ in range(reps):
    insert()
cpu = (time.process_time() - t0) / reps
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{mode:6} {n:5d} rows: {cpu * 1000:6.2f} ms CPU/insert, {cpu / n * 1e6:7.2f} us/row, "
      f"peak RSS {rss:.0f} MB, pandas loaded: {'pandas' in sys.modules}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"load {Path('/proc/loadavg').read_text().strip()}")
    for n in args.rows or [20, 200, 5000]:
        for mode in ("python", "file"):
            subprocess.run(
                [sys.executable, "-c", CHILD, mode, str(n), str(args.repeats)], cwd=REPO, check=True
            )


if __name__ == "__main__":
    main()
