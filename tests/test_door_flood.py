"""Connection floods against a real daemon: while one is on, of any shape (silent,
trickling headers or bodies, reopened as fast as closed, from one address or many), a
real client's every push and probe is answered, and served (issue 12's fault 7)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from server.web.serve import CONNECTION_LIMIT
from tests.conftest import wait_until
from tests.support.flood import Flood
from tests.test_door_attacks import push_as_otlp_exporters_do
from tests.test_ingest_overload import Pushed, ndjson, no_leaked_daemons

__all__ = ["no_leaked_daemons"]
PROBES = 12


def _probe(pushed: Pushed) -> tuple[list[str], float]:
    """:data:`PROBES` requests of a real client, each on a new connection: ``/healthz``
    (n odd) and pushes of ``m<200 + n>`` and ``m<300 + n>`` (n even), sent as OpenTelemetry
    exporters do (a 429 retried after its ``Retry-After``, up to three tries: the door's
    answer to more pushes than ``logs.max_in_flight``); how each that did not end 200 went
    wrong (a reset, a timeout, a status), and the longest one took (s)."""
    failed, longest = [], 0.0
    for n in range(PROBES):
        started = time.monotonic()
        try:
            if n % 2:
                answer = requests.get(f"http://127.0.0.1:{pushed.port}/healthz", timeout=10)
                statuses = [answer.status_code]
            else:
                statuses = push_as_otlp_exporters_do(pushed, ndjson(200 + n, 300 + n))
        except requests.RequestException as exc:
            failed.append(f"probe {n}: {type(exc).__name__}: {exc}")
            continue
        finally:
            longest = max(longest, time.monotonic() - started)
        if statuses[-1] != 200:
            failed.append(f"probe {n}: {statuses}")
    return failed, longest


def _flooded(pushed: Pushed, floods: list[Flood]) -> tuple[list[str], float]:
    """Probe while ``floods`` run (once the daemon closed twice its connection limit for
    room: every slot has turned over), then stop them."""
    for flood in floods:
        flood.start()
    try:
        assert wait_until(lambda: pushed.metric("lightbulb_connections_evicted")
                          >= 2 * CONNECTION_LIMIT, 60)  # fmt: skip
        return _probe(pushed)
    finally:
        for flood in floods:
            flood.stop()


def _pushed_records() -> list[str]:
    """The records the probes pushed, sorted."""
    return sorted(f"m{k}" for n in range(0, PROBES, 2) for k in (200 + n, 300 + n))


def test_a_thousand_trickled_bodies_reopened_as_closed_leave_every_probe_answered(
    tmp_path: Path,
) -> None:
    # the attacker's fault 7: ~1,000 token holders' bodies at a byte a second, each
    # reopened as closed (~15,000 connections in 30 s): 2-3 of 12 probes were reset
    pushed = Pushed(tmp_path, "")
    flood = Flood(pushed.port, "body", 1000)
    failed, longest = _flooded(pushed, [flood])
    assert failed == [], (failed, flood.counts)
    assert longest < 15  # three tries at most, two Retry-After waits of 1 s
    assert pushed.metric("lightbulb_connections_turned_away") == 0
    code, _took = pushed.daemon.stop()
    assert code == 0
    assert sorted(pushed.stored()) == _pushed_records()


@pytest.mark.parametrize("same_address", [True, False], ids=["probes-share-an-address", "apart"])
def test_floods_of_every_shape_at_once_leave_every_probe_answered(
    tmp_path: Path, same_address: bool
) -> None:
    pushed = Pushed(tmp_path, "")
    sources = ("127.0.0.1",) if same_address else ("127.0.0.2",)
    many = tuple(f"127.0.1.{n}" for n in range(1, 101))  # a hundred addresses, few each
    floods = [
        Flood(pushed.port, "body", 400, sources=sources),
        Flood(pushed.port, "headers", 200, sources=sources),
        Flood(pushed.port, "idle", 300, sources=many),
        Flood(pushed.port, "reconnect", 20, sources=sources),
    ]
    failed, longest = _flooded(pushed, floods)
    assert failed == [], (failed, [flood.counts for flood in floods])
    assert longest < 15  # three tries at most, two Retry-After waits of 1 s
    assert pushed.metric("lightbulb_connections_turned_away") == 0
    code, _took = pushed.daemon.stop()
    assert code == 0
    assert sorted(pushed.stored()) == _pushed_records()
