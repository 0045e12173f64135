"""What ``benchmarks/ingest_trace/sitecustomize.py`` logged, summarised for a run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Trace:
    """Events of one run: (start s, fields) per kind; gc and work keep the process."""

    reqs: list[tuple[float, dict[str, float]]]
    execs: list[tuple[float, float]]  # (start, ms)
    works: list[tuple[float, float, float]]  # (start, ms, cpu ms)
    inserts: list[tuple[float, float]]  # (start, ms)
    wal: list[tuple[float, str, float]]  # (start, rotate|delete, ms)
    gcs: list[tuple[str, float, int, float]]  # (daemon|worker, start, generation, ms)
    hooked: list[str]


def read(trace: Path, start: float, end: float) -> Trace:
    """Every event of ``trace``'s files that began within [start, end]."""
    out = Trace([], [], [], [], [], [], [])
    for path in trace.glob("*.log"):
        lines = [line.split() for line in path.read_text().splitlines() if line]
        worker = any(p[:2] == ["hooked", "worker"] for p in lines)
        for p in lines:
            if p[0] == "hooked":
                out.hooked.append(p[1])
                continue
            at = float(p[1])
            if not start <= at <= end:
                continue
            if p[0] == "req":
                out.reqs.append((at, {k: float(v) for k, v in (f.split("=") for f in p[2:])}))
            elif p[0] == "exec":
                out.execs.append((at, float(p[2])))
            elif p[0] == "work":
                out.works.append((at, float(p[2]), float(p[3])))
            elif p[0] == "wal":
                out.wal.append((at, p[2], float(p[3])))
            elif p[0] == "insert":
                out.inserts.append((at, float(p[2])))
            elif p[0] == "gc":
                out.gcs.append(("worker" if worker else "daemon", at, int(p[2]), float(p[3])))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def line(name: str, values: list[float]) -> str:
    return (f"  {name:<22} p50 {pct(values, 0.5):6.1f}  p90 {pct(values, 0.9):6.1f}  "
            f"p99 {pct(values, 0.99):6.1f}  max {max(values, default=0):6.1f} ms "
            f"({len(values)})")  # fmt: skip


def summary(trace: Path, start: float, end: float) -> str:
    """Phases' percentiles; GC pauses and inserts; what overlapped the slowest 1%."""
    t = read(trace, start, end)
    rows = [line("web task (exec)", [ms for _, ms in t.execs])]
    for key, name in (("acq", "wait for a worker"), ("prep", "prepare (wait incl.)"),
                      ("store", "store (WAL)"), ("append", "  of which append"),
                      ("sync", "  of which fsync")):  # fmt: skip
        rows.append(line(name, [r[key] for _, r in t.reqs]))
    rows.append(line("prepare - wait", [r["prep"] - r["acq"] for _, r in t.reqs]))
    rows.append(line("worker, wall", [ms for _, ms, _ in t.works]))
    rows.append(line("worker, CPU", [cpu for _, _, cpu in t.works]))
    rows.append(line("engine insert", [ms for _, ms in t.inserts]))
    for what in ("rotate", "delete"):
        rows.append(line(f"WAL {what} (locked)", [ms for _, w, ms in t.wal if w == what]))
    for kind in ("daemon", "worker"):
        for gen in (0, 1, 2):
            pauses = [ms for k, _, g, ms in t.gcs if k == kind and g == gen]
            if pauses:
                rows.append(f"  gc {kind} gen{gen}: {len(pauses)} logged (>= 2 ms or full), "
                            f"total {sum(pauses):.0f} ms, max {max(pauses):.1f} ms")  # fmt: skip
    slow = sorted(t.execs, key=lambda e: -e[1])[: max(1, len(t.execs) // 100)]
    for at, ms in slow:
        until = at + ms / 1000
        req = min(t.reqs, key=lambda r: abs(r[0] - at), default=(0.0, {}))[1]
        inserts = [i for i in t.inserts if i[0] < until and i[0] + i[1] / 1000 > at]
        gcs = [g for g in t.gcs if g[1] < until and g[1] + g[3] / 1000 > at]
        wal = [w for w in t.wal if w[0] < until and w[0] + w[2] / 1000 > at]
        rows.append(
            f"  slow: {ms:.0f} ms at +{at - start:.1f} s: wait {req.get('acq', 0):.0f}, "
            f"prepare {req.get('prep', 0):.0f}, store {req.get('store', 0):.0f} "
            f"(append {req.get('append', 0):.0f}, fsync {req.get('sync', 0):.0f}); overlapping: "
            + "".join(f"WAL {w} {took:.0f} ms, " for _, w, took in wal)
            + f"{len(inserts)} insert(s) {sum(i[1] for i in inserts):.0f} ms, "
            + (", ".join(f"{k} gen{g} {p:.0f} ms" for k, _, g, p in gcs) or "no gc pause")
        )
    hooked = sorted(set(t.hooked))
    rows.append(f"  hooked: {', '.join(hooked)}")
    return "\n".join(rows)
