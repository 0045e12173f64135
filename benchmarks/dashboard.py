"""Dashboard speed on a month of history: 1,000 services x 30 days of 15 s checks.

    python benchmarks/dashboard.py                      # ~173M status rows, then measure
    python benchmarks/dashboard.py --services 200 --days 7 --requests 20

Generates the history inside chDB with ``INSERT ... SELECT`` from ``numbers()``
(the materialized views fill the hourly summary and the current-status table
as they would in production), prints how many rows, then times the pages and
API through the real Flask app: the overview, a service page over 30 days, the
status page, ``/api/v1/services``, ``/incidents`` and ``/api/v1/incidents``;
p50/p95 against #14's targets (overview and status page < 100 ms, service page
and incidents < 200 ms). Alert history for the incidents is generated too
(:func:`generate_incidents`: 15 per service over the days). Every service has an SLO (99.9 %
over 30 days, so the overview computes one per tile) and the status page shows
ten configured groups with their 90-day bars.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask.testing import FlaskClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.analytics.flap_replay import replay  # noqa: E402
from server.core.clock import SystemClock  # noqa: E402
from server.process import freeze_startup_objects  # noqa: E402
from server.schema import Target, apply_schema  # noqa: E402
from server.storage.embedded import EmbeddedStorage  # noqa: E402
from server.validation import parse_config  # noqa: E402
from server.web import WebContext, create_app  # noqa: E402

TARGETS_MS = {
    "overview": 100.0,
    "service page (30 d)": 200.0,
    "/status": 100.0,
    "/api/v1/services": 200.0,
    "/incidents": 200.0,
    "/api/v1/incidents": 200.0,
}
INTERVAL = 15


def generate(store: EmbeddedStorage, services: int, days: int) -> int:
    """One INSERT ... SELECT per day, so memory stays bounded; returns rows written."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=days)
    per_day = services * 86400 // INTERVAL
    for day in range(days):
        began = time.perf_counter()
        store.execute(
            f"""
            INSERT INTO monitor.service_status
                (service_id, timestamp, status_code, message, service_type, stack, details,
                 response_time_ms, cpu_usage, memory_usage)
            SELECT
                concat('svc-', toString(number % {services})) AS service_id,
                toDateTime64({{start:DateTime64(3, 'UTC')}}, 3, 'UTC')
                    + toIntervalSecond(({day} * 86400) + intDiv(number, {services}) * {INTERVAL})
                    AS timestamp,
                multiIf(cityHash64(number, {day}) % 2000 = 0, 2,
                        cityHash64(number, {day}) % 300 = 0, 1, 0) AS status_code,
                if(status_code = 0, 'ok', 'check failed: connection refused') AS message,
                'http' AS service_type,
                concat('stack-', toString(number % {services} % 10)) AS stack,
                '{{}}' AS details,
                toUInt32(20 + cityHash64(number) % 180) AS response_time_ms,
                toFloat32(cityHash64(number, 1) % 1000 / 10) AS cpu_usage,
                toFloat32(100 + cityHash64(number, 2) % 400) AS memory_usage
            FROM numbers({per_day})
            """,
            {"start": start},
        )
        print(f"  day {day + 1}/{days}: {per_day:,} rows in {time.perf_counter() - began:.1f} s",
              flush=True)  # fmt: skip
    return per_day * days


INCIDENTS_PER_SERVICE = 15  # over the generated days: one every two days or so


def generate_incidents(store: EmbeddedStorage, services: int, days: int) -> int:
    """Alert history as the engine writes it, for ``/incidents``: per watched service
    (stacks 0-8, rule ``down``) 15 firing periods of 1-60 min over the days, each with
    its firing and resolve transitions, delivery rows and two delivered notices (4
    outbox rows), an acknowledgement on every third; every tenth service's firing is
    inhibited by its neighbour's a second later (one incident, two services). The
    unwatched services (stack 9) get the same runs as FAILED status transitions.
    Returns the incidents written."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=days)
    span = days * 86400 // INCIDENTS_PER_SERVICE
    runs = f"""
        SELECT number % {services} AS n, intDiv(number, {services}) AS k,
               if(n % 10 = 1, n - 1, n) AS lead,
               toDateTime64({{start:DateTime64(3, 'UTC')}}, 3, 'UTC')
                   + toIntervalSecond(k * {span} + cityHash64(lead, k) % ({span} - 3600)
                                      + if(n % 10 = 1, 1, 0)) AS began,
               began + toIntervalSecond(60 + cityHash64(lead, k, 1) % 3540) AS ended,
               concat('svc-', toString(n)) AS sid,
               if(n % 10 = 1, concat('svc-', toString(n - 1)), '') AS cause,
               concat('down:', sid, '@', formatDateTime(began, '%Y-%m-%dT%H:%i:%S'),
                      '.000+00:00') AS incident
        FROM numbers({services * INCIDENTS_PER_SERVICE})"""
    watched = "n % 10 != 9"
    store.execute(
        f"""
        INSERT INTO monitor.alert_events
        SELECT at, event, 'down', sid, before, after, 'critical', 1, msg, ['hook'], result, '',
               who
        FROM ({runs}) ARRAY JOIN
            [began, began + toIntervalMillisecond(250), ended, ended + toIntervalMillisecond(250),
             began + toIntervalSecond(120)] AS at,
            ['transition', 'delivery', 'transition', 'delivery', 'ack'] AS event,
            ['inactive', 'firing', 'firing', 'resolved', 'firing'] AS before,
            ['firing', 'firing', 'resolved', 'resolved', 'firing'] AS after,
            [if(cause = '', 'queued', 'inhibited'), 'sent', 'queued', 'sent', ''] AS result,
            ['check failed: connection refused', 'notice, 1 attempt(s)', '', 'notice, 1 attempt(s)',
             'on it'] AS msg,
            [cause, '', '', '', 'ops'] AS who
        WHERE {watched} AND (event != 'ack' OR k % 3 = 0)
        """,
        {"start": start},
    )
    store.execute(
        f"""
        INSERT INTO monitor.notifications
        SELECT concat(incident, '/', news), rev, 'hook', 'alert', 'down', state,
               if(news = 'firing', began, ended) AS queued, queued, queued + toIntervalHour(1),
               if(rev = 0, 0, 1), '', 0, [concat('down:', sid)], [news], [incident],
               if(rev = 0, '{{}}', '')
        FROM ({runs}) ARRAY JOIN ['firing', 'resolved'] AS news
        ARRAY JOIN [0, 3] AS rev, ['queued', 'delivered'] AS state
        WHERE {watched} AND cause = ''
        """,
        {"start": start},
    )
    store.execute(
        f"""
        INSERT INTO monitor.service_transitions
        SELECT sid, at, from_s, to_s, msg FROM ({runs})
        ARRAY JOIN [began, ended] AS at, [0, 2] AS from_s, [2, 0] AS to_s,
            ['status changed OK -> FAILED: check failed: connection refused',
             'status changed FAILED -> OK: ok'] AS msg
        WHERE n % 10 = 9
        """,
        {"start": start},
    )
    return services * INCIDENTS_PER_SERVICE


def settle(store: EmbeddedStorage, limit: float = 900.0) -> float:
    """Wait until ClickHouse has no merge running: time the steady state, not the bulk load.

    Thirty 5.8M-row inserts leave large parts to merge for minutes; a daemon
    that wrote the same history over a month would have merged them long ago.
    """
    began = time.monotonic()
    quiet = 0
    while time.monotonic() - began < limit and quiet < 3:
        busy = store.query("SELECT count() AS n FROM system.merges")[0]["n"]
        quiet = quiet + 1 if not busy else 0
        time.sleep(2)
    return time.monotonic() - began


def config_text(services: int) -> str:
    lines = ["services:"]
    lines += [
        f"  - {{id: svc-{i}, type: http, stack: stack-{i % 10}, interval: {INTERVAL}s, "
        f"http: {{url: 'http://127.0.0.1:9/'}}, slo: {{target: 99.9, window: 30d}}}}"
        for i in range(services)
    ]
    # rule `down` watches stacks 0-8 (ids ending 0-8); stack 9's incidents are FAILED runs
    lines += ["channels:", "  hook: {type: webhook, url: 'http://127.0.0.1:9/hook'}"]
    lines += ["alert_rules:", "  - {id: down, service: 'svc-*[0-8]', condition: 'status >= FAILED',"
              " channels: [hook], severity: critical}"]  # fmt: skip
    lines += ["status_page:", "  groups:"]
    lines += [f"    - {{name: Group {g}, services: ['stack:stack-{g}']}}" for g in range(10)]
    return "\n".join(lines) + "\n"


def measure(
    client: object, url: str, requests: int, before: Callable[[], None] | None = None
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds per request (CPU of the whole process: Flask and
    chDB's threads). On a shared, loaded machine wall time waits for cores; CPU time
    is what the request costs, whatever the load. ``before`` runs ahead of each
    request, untimed."""
    timings, cpu = [], []
    for _ in range(requests + 2):
        if before is not None:
            before()
        began, began_cpu = time.perf_counter(), time.process_time()
        response = client.get(url)  # type: ignore[attr-defined]
        elapsed = (time.perf_counter() - began) * 1000
        cpu.append((time.process_time() - began_cpu) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.data[:300])
        timings.append(elapsed)
    return timings[2:], cpu[2:]  # the first two warm caches


def load() -> str:
    """The 1/5/15-minute load averages: the machine is shared, figures need them beside."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_recomputed(client: FlaskClient, store: EmbeddedStorage, requests: int) -> None:
    """Times the pages that keep an answer with one check stored before each request."""

    # the pages keep an answer while nothing they read changed (server.web.read_cache);
    # in a running daemon every insert of checks changes service_status, so the
    # pages that keep one are timed again with one check stored before each request,
    # and the read cache's counters say how many of those requests worked it out
    def one_check() -> None:
        store.execute(
            "INSERT INTO monitor.service_status (service_id, timestamp, status_code, message,"
            " service_type) VALUES ('svc-7', now64(3, 'UTC'), 0, 'ok', 'http')"
        )

    # the incidents read no checks (only transitions, alert events, notices, notes), so a
    # check leaves their list kept. A note (on no incident: the answer is the same) leaves
    # the derivation kept too, its notes read again (incidents_view.with_notes); an alert
    # event (an ack of no alert) is what makes the list derived again, as a firing would
    def one_note() -> None:
        store.execute(
            "INSERT INTO monitor.incident_notes (incident_id, note, author, updated_at)"
            " VALUES ('bench-none', 'x', 'bench', now64(3, 'UTC'))"
        )

    def one_event() -> None:
        store.execute(
            "INSERT INTO monitor.alert_events (timestamp, event, rule_id, service_id, message)"
            " VALUES (now64(3, 'UTC'), 'ack', 'bench-none', 'bench-none', 'x')"
        )

    kept = client.application.extensions["lightbulb"].read_cache
    status = ("recent incidents", "status history")  # the answers /status keeps
    runs = [("/status", status, "a check", one_check),
            ("/status", status, "a note", one_note),
            ("/status", status, "an alert event", one_event),
            ("/incidents", ("incidents page",), "a check", one_check),
            ("/incidents", ("incidents page",), "a note", one_note),
            ("/incidents", ("incidents page",), "an alert event", one_event),
            ("/api/v1/incidents", ("incidents api",), "a check", one_check),
            ("/api/v1/incidents", ("incidents api",), "a note", one_note),
            ("/api/v1/incidents", ("incidents api",), "an alert event", one_event)]  # fmt: skip
    for url, counter, what, before in runs:
        name = f"{url}, {what} stored before each"

        def worked(notes: bool, counter: tuple[str, ...] = counter) -> int:
            return sum(n for k, n in kept.computed.items()
                       if k.startswith(counter) and k.endswith(", notes") == notes)  # fmt: skip

        was, was_notes = worked(False), worked(True)
        timings, cpu = measure(client, url, requests, before=before)
        p50, p95 = statistics.median(timings), pct(timings, 0.95)
        print(f"{name:22s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  (derived: "
              f"{worked(False) - was}, notes read: {worked(True) - was_notes}, "
              f"in {requests + 2} requests) "
              f"CPU p50 {statistics.median(cpu):6.1f} ms "
              f"p95 {pct(cpu, 0.95):6.1f} ms  (load {load()})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--dir", default=None, help="keep the data here (default: a temp dir)")
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.services:,} services x {args.days} days "
          f"of {INTERVAL} s checks")  # fmt: skip
    print(f"load average before: {load()}")
    with tempfile.TemporaryDirectory(prefix="lb-dash-bench-") as tmp:
        root = Path(args.dir or tmp)
        store = EmbeddedStorage(root / "db", "monitor")
        apply_schema(store, Target("monitor"))
        began = time.perf_counter()
        existing = store.query("SELECT count() AS n FROM monitor.service_status")[0]["n"]
        if existing and args.dir:
            print(f"reusing {existing:,} rows in {root}")
            rows = existing
        else:
            rows = generate(store, args.services, args.days)
        took = time.perf_counter() - began
        if not store.query("SELECT count() AS n FROM monitor.alert_events")[0]["n"]:
            made = generate_incidents(store, args.services, args.days)
            print(f"generated {made:,} incidents (alert events, notices, FAILED runs)")
        counted = store.query("SELECT count() AS n FROM monitor.service_status")[0]["n"]
        hourly = store.query("SELECT count() AS n FROM monitor.service_status_hourly")[0]["n"]
        print(f"generated {counted:,} service_status rows ({rows / took / 1e6:.1f} M rows/s); "
              f"hourly summary {hourly:,} rows")  # fmt: skip
        waited = settle(store)
        parts = store.query(
            "SELECT count() AS n FROM system.parts WHERE active AND table = 'service_status'"
        )[0]["n"]
        print(f"waited {waited:.0f} s for background merges to finish ({parts} parts left)")
        config = parse_config(config_text(args.services), "bench.yaml", {})
        # as the daemon's first start does: the flapping of services without rules from
        # before it recorded it, judged once (pages then only read the recorded periods)
        now = datetime.now(UTC)
        replayed = replay(store, config, now, now)
        if replayed is not None:
            print(f"replayed the flapping from before recording: {replayed} periods")
        client = create_app(WebContext(config, store, SystemClock())).test_client()
        freeze_startup_objects()  # as `lightbulb run` and `lightbulb dashboard` do after start
        pages = {
            "overview": "/",
            "service page (30 d)": "/services/svc-7?range=30d",
            "/status": "/status",
            "/api/v1/services": "/api/v1/services",
            "/incidents": "/incidents",
            "/api/v1/incidents": "/api/v1/incidents",
        }
        for name, url in pages.items():
            timings, cpu = measure(client, url, args.requests)
            p50, p95 = statistics.median(timings), pct(timings, 0.95)
            verdict = "met" if p95 < TARGETS_MS[name] else "MISSED"
            print(f"{name:22s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
                  f"target p95 < {TARGETS_MS[name]:g} ms: {verdict}  "
                  f"CPU p50 {statistics.median(cpu):6.1f} ms p95 {pct(cpu, 0.95):6.1f} ms  "
                  f"(load {load()})")  # fmt: skip

        time_recomputed(client, store, args.requests)
        store.close()


if __name__ == "__main__":
    main()
