"""Error messages normalised into patterns, and the error_patterns view counting them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.logs.patterns import fingerprint, normalise, pattern_of
from server.recorder import LOG_COLUMNS
from server.schema import Target, apply_schema
from server.storage.embedded import EmbeddedStorage

TABLE = [
    ("timeout after 5000 ms talking to 10.0.0.7:5432", "timeout after <num> ms talking to <ip>"),
    ("timeout after 250 ms talking to 192.168.1.20:6379", "timeout after <num> ms talking to <ip>"),
    ("user bob@example.com not found", "user <email> not found"),
    ("user ana.lima+ops@corp.example.org not found", "user <email> not found"),
    ("request 3f2a1b4c-1d2e-4f5a-9b8c-7d6e5f4a3b2c failed", "request <uuid> failed"),
    ("file /var/lib/app/data.db is locked", "file <path> is locked"),
    ("C:\\Users\\bob\\file.txt not found", "<path> not found"),
    ("key 'abc' missing", "key <str> missing"),
    ('column "user_id" does not exist', "column <str> does not exist"),
    ("pointer 0x7ffe1234 invalid", "pointer <hex> invalid"),
    ("commit deadbeefcafe1234 rejected", "commit <hex> rejected"),
    ("GET https://api.example.com/v1/users?id=5 returned 503", "GET <url> returned <num>"),
    ("retry 3 of 5 in 2.5s", "retry <num> of <num> in <num>s"),
    ("host fe80::1ff:fe23:4567:890a unreachable", "host <ip> unreachable"),
    ("2001:db8::8a2e:370:7334 refused", "<ip> refused"),
    ("ValueError: invalid literal for int() with base 10: 'x'",
     "ValueError: invalid literal for int() with base <num>: <str>"),
    ("job 42 done in 1,234ms", "job <num> done in <num>ms"),
    ("disk 97% full on /dev/sda1", "disk <num>% full on <path>"),
    ("order #12345 declined", "order #<num> declined"),
    ("balance -12.50 below zero", "balance <num> below zero"),
    ("connection reset by peer", "connection reset by peer"),
    ("  leading and   repeated   spaces  ", "leading and repeated spaces"),
    ("first line\nTraceback (most recent call last):\n  File x", "first line"),
    ("worker-7 crashed", "worker-<num> crashed"),
    ("at 10:30:00 the queue was full", "at <num>:<num>:<num> the queue was full"),
    ("session a1b2c3d4e5f6a7b8 expired", "session <hex> expired"),
    ("payment for 'Mary O\\'Brien' failed", "payment for <str> failed"),
    ("ssh to admin@10.1.2.3 denied", "ssh to <email> denied"),
    ("upload s3://bucket/key/part-0001 failed", "upload <url> failed"),
    ("HTTP 500 from `billing` after 3 tries", "HTTP <num> from <str> after <num> tries"),
]  # fmt: skip


@pytest.mark.parametrize(("message", "pattern"), TABLE)
def test_messages_normalise_to_their_pattern(message: str, pattern: str) -> None:
    assert normalise(message) == pattern


def test_fingerprints_are_stable_and_only_for_errors() -> None:
    assert fingerprint("timeout after <num> ms") == fingerprint("timeout after <num> ms")
    assert fingerprint("a") != fingerprint("b")
    assert pattern_of("INFO", "timeout after 5 ms") == ("", 0)
    assert pattern_of("error", "timeout after 5 ms")[0] == "timeout after <num> ms"


def test_error_patterns_view_counts_per_fingerprint_and_hour(tmp_path: object) -> None:
    store = EmbeddedStorage(f"{tmp_path}/db", "monitor")
    try:
        apply_schema(store, Target("monitor"))
        t0 = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
        messages = [
            ("api", t0, "ERROR", "timeout after 5000 ms"),
            ("api", t0 + timedelta(minutes=10), "ERROR", "timeout after 300 ms"),
            ("db", t0 + timedelta(hours=1), "CRITICAL", "timeout after 12 ms"),
            ("db", t0, "ERROR", "disk full"),
            ("db", t0, "INFO", "timeout after 1 ms"),  # not an error: no pattern
        ]
        rows = [
            (s, at, lv, m, "t", None, None, {}, *pattern_of(lv, m)) for s, at, lv, m in messages
        ]
        store.insert("service_logs", LOG_COLUMNS, rows)
        patterns = store.query(
            "SELECT anyMerge(pattern) AS pattern, sum(count) AS n, "
            "groupUniqArrayMerge(services) AS services, min(first_seen) AS first, "
            "max(last_seen) AS last, uniqExact(hour) AS hours "
            "FROM monitor.error_patterns GROUP BY fingerprint ORDER BY n DESC"
        )
        assert [(p["pattern"], p["n"], sorted(p["services"]), p["hours"]) for p in patterns] == [
            ("timeout after <num> ms", 3, ["api", "db"], 2),
            ("disk full", 1, ["db"], 1),
        ]
        assert patterns[0]["first"] == t0 and patterns[0]["last"] == t0 + timedelta(hours=1)
    finally:
        store.close()
