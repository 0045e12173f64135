"""The dashboard's reads, restructured for speed, give exactly what the plain reads give.

Each test runs the page's read and a plain statement (the form it had before it was
restructured) on the same chDB data and compares the values the pages show.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.analytics.slo import Counts, Objective, burn_rate
from server.analytics.uptime import HOURLY_UP, WORST_SQL
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage
from server.web import history
from server.web.queries import ServiceView

H, M, D = timedelta(hours=1), timedelta(minutes=1), timedelta(days=1)
START = datetime(2026, 11, 1, tzinfo=UTC)
STEP = 7  # seconds between checks


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStorage]:
    """Two days of checks every 7 s for 'a' (statuses from a hash) and 'b' (OK, no
    response time), inserted in two batches so some hours have two summary rows."""
    storage = EmbeddedStorage(tmp_path_factory.mktemp("reads") / "db", "monitor")
    apply_schema(storage, Target("monitor"))
    for part in (0, 1):
        storage.execute(
            f"""
            INSERT INTO monitor.service_status
                (service_id, timestamp, status_code, message, service_type, stack, details,
                 response_time_ms)
            SELECT if(number % 2 = 0, 'a', 'b'),
                   {{start:DateTime64(3, 'UTC')}}
                       + toIntervalSecond(intDiv(number, 2) * {STEP} + {part}),
                   if(number % 2 = 0, [0, 0, 0, 1, 2, 5, 4, 3][cityHash64(number) % 8 + 1], 0),
                   'x', 'tcp', 'default', '{{}}',
                   if(number % 2 = 0, toUInt32(10 + cityHash64(number) % 90), NULL)
            FROM numbers(2 * intDiv(2 * 86400, {STEP}))
            WHERE intDiv(number, 2) % 2 = {part}
            """,
            {"start": START},
        )
    yield storage
    storage.close()


def plain_strips(
    store: EmbeddedStorage, ids: list[str], now: datetime, windows: list[timedelta]
) -> dict[str, dict[str, Any]]:
    """The 24 h strip read as it was: windows under a day summed by ``sumIf`` in SQL."""
    begin = now.replace(minute=0, second=0, microsecond=0) - 23 * H
    terms, params = [], {}
    for k, window in enumerate(windows):
        start = now - window
        first = start.replace(minute=0, second=0, microsecond=0)
        weight = 1 - (start - first) / H
        params[f"h{k}"] = int(first.timestamp())
        at = f"toDateTime({{h{k}:UInt32}}, 'UTC')"
        for out, column in (("bc", "n"), ("bu", "ok")):
            terms.append(f"sumIf({column}, hour > {at}) + "
                         f"{weight!r} * sumIf({column}, hour = {at}) AS {out}{k}")  # fmt: skip
    rows = store.query(
        f"""
        SELECT service_id, sum(n) AS c1, sum(ok) AS u1,
               groupArray((intDiv(toUnixTimestamp(hour) - {{first:UInt32}}, 3600),
                           worst, avg_rt)) AS strip{"".join(", " + t for t in terms)}
        FROM (
            SELECT service_id, hour, sum(checks) AS n, sum({HOURLY_UP}) AS ok,
                   {WORST_SQL} AS worst,
                   if(sum(response_time_count) > 0,
                      sum(response_time_sum) / sum(response_time_count), NULL) AS avg_rt
            FROM monitor.service_status_hourly
            WHERE service_id IN {{ids:Array(String)}}
              AND hour >= toDateTime({{strip:DateTime64(3, 'UTC')}}, 'UTC')
            GROUP BY service_id, hour
        )
        GROUP BY service_id
        """,
        {"ids": ids, "strip": begin, "first": int(begin.timestamp()), **params},
    )
    return {r["service_id"]: r for r in rows}


@pytest.mark.parametrize(
    "now",
    [
        START + D + 13 * H + 37 * M + timedelta(seconds=11, milliseconds=250),
        START + 2 * D,  # on the hour and at the data's end
        START + 2 * D + 5 * H + 30 * M,  # hours after the last check: empty hours
        START + 10 * H + 3 * M,  # younger than the strip: its first hours empty
    ],
)
def test_tile_strip_24h_uptime_and_short_windows_equal_the_plain_sql_sums(
    store: EmbeddedStorage, now: datetime
) -> None:
    window = 2 * H + 15 * M
    short = sorted({window, H, 6 * H})
    views = {
        "a": ServiceView("a", "a", "tcp", "default", checked=True),
        "b": ServiceView("b", "b", "tcp", "default", checked=True),
    }
    goals = {"a": Objective(99.0, window), "b": Objective(99.9, 23 * H + 30 * M)}
    history.load(lambda sql, **p: store.query(sql.replace("{db}", "monitor"), p), views, now,
                 goals)  # fmt: skip
    plain = plain_strips(store, ["a", "b"], now, short)
    plain_b = plain_strips(store, ["b"], now, [23 * H + 30 * M, H, 6 * H])["b"]
    for sid, view in views.items():
        row = plain[sid]
        assert view.uptime["24h"] == (round(100.0 * row["u1"] / row["c1"], 3) if row["c1"]
                                      else None)  # fmt: skip
        codes: list[int | None] = [None] * 24
        rts: list[float | None] = [None] * 24
        for index, worst, rt in row["strip"]:
            if 0 <= index < 24:
                codes[index], rts[index] = worst, rt
        assert (view.strip_codes, view.strip_rt) == (codes, rts)
        assert any(c is not None for c in codes)
    a, b = views["a"].slo, views["b"].slo
    assert a is not None and b is not None
    counts = {w: Counts(plain["a"][f"bu{k}"], plain["a"][f"bc{k}"]) for k, w in enumerate(short)}
    assert a.window == counts[window]
    assert (a.burn_1h, a.burn_6h) == (burn_rate(counts[H], goals["a"]),
                                      burn_rate(counts[6 * H], goals["a"]))  # fmt: skip
    assert b.window == Counts(plain_b["bu0"], plain_b["bc0"])
    assert b.burn_6h == burn_rate(Counts(plain_b["bu2"], plain_b["bc2"]), goals["b"])
