"""The room's choice of the connection to close at the connection limit, at pinned
times, on stand-ins carrying the fields of a waitress channel and our parser that the
room reads (a daemon under real floods: tests/test_door_flood.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.web.admission import MEASURE_AFTER, MIN_RATE
from server.web.waitress_room import Kind, Room, kind, listen_backlog


@dataclass
class _Request:
    started: float
    headers_finished: bool = True
    body_bytes_received: int = 0
    charged: int | None = None  # held by the door


@dataclass(eq=False)
class _Channel:
    addr: tuple[str, int]
    request: _Request | None = None
    requests: list[Any] = field(default_factory=list)
    total_outbufs_len: int = 0
    will_close: bool = False
    looked_at: int = 0  # times the room read what it is doing

    def __getattribute__(self, name: str) -> Any:
        if name == "requests":
            object.__setattr__(self, "looked_at", object.__getattribute__(self, "looked_at") + 1)
        return object.__getattribute__(self, name)


def _room(*channels: tuple[_Channel, float]) -> Room:
    room = Room()
    for channel, heard in channels:
        room.enter(channel, heard)
    return room


def test_connections_are_counted_by_address_as_they_come_and_go() -> None:
    a1, a2, b1 = _Channel(("10.0.0.1", 1)), _Channel(("10.0.0.1", 2)), _Channel(("10.0.0.2", 1))
    room = _room((a1, 0.0), (a2, 0.0), (b1, 0.0))
    room.enter(a1, 0.0)  # once however often
    assert (room.held("10.0.0.1"), room.held("10.0.0.2"), len(room)) == (2, 1, 3)
    room.leave(a1)
    room.leave(a1)
    room.leave(a2)
    assert (room.held("10.0.0.1"), room.held("10.0.0.2"), len(room)) == (0, 1, 1)


def test_what_a_connection_is_doing_decides_whether_and_when_it_goes() -> None:
    now, old = 100.0, 100.0 - 2 * MEASURE_AFTER
    fast = int(MIN_RATE * 2 * MEASURE_AFTER) + 1

    def of(request: _Request | None, **fields: Any) -> Kind:
        return kind(_Channel(("x", 1), request, **fields), old, now)

    assert of(None) is Kind.LOITERING  # silent since it was last heard from
    assert kind(_Channel(("x", 1)), now - MEASURE_AFTER / 2, now) is Kind.ARRIVING  # new
    assert of(_Request(old, headers_finished=False)) is Kind.LOITERING
    assert of(_Request(old, body_bytes_received=3)) is Kind.LOITERING
    assert of(_Request(old, body_bytes_received=3, charged=100)) is Kind.HOLDING
    assert of(_Request(old, body_bytes_received=fast)) is Kind.ARRIVING
    assert of(_Request(old, body_bytes_received=fast, charged=100)) is Kind.SENDING
    assert of(_Request(now, charged=100)) is Kind.SENDING  # too young to judge
    assert of(None, requests=[object()]) is Kind.BUSY
    assert of(None, total_outbufs_len=10) is Kind.BUSY
    assert of(None, will_close=True) is Kind.BUSY


def test_the_biggest_holders_quietest_loiterer_goes_first_the_newest_connection_last() -> None:
    now = 100.0
    old = now - 2 * MEASURE_AFTER
    # a flood from one address: trickled bodies, one held; a real client's new connection
    held = _Channel(("10.0.0.9", 1), _Request(old, body_bytes_received=1, charged=10))
    trickling = [_Channel(("10.0.0.9", n), _Request(old, body_bytes_received=1))
                 for n in range(2, 5)]  # fmt: skip
    real = _Channel(("10.0.0.1", 1))
    room = _room((held, old), *((c, old + n / 100) for n, c in enumerate(trickling)),
                 (real, now))  # fmt: skip
    assert room.victim(now) is trickling[0]
    room.touch(trickling[0], now)  # heard from again: last of its address to go
    assert room.victim(now) is trickling[1]
    for channel in trickling:
        room.leave(channel)
    # no loiterer left: the new connection (too young to judge) before the held push
    assert room.victim(now) is real
    real.requests.append(object())  # its request is being served: never closed
    assert room.victim(now) is held
    held.will_close = True
    assert room.victim(now) is None


def test_finding_a_loiterer_reads_the_first_connections_not_every_one() -> None:
    now = 100.0
    channels = [_Channel(("10.0.0.9", n)) for n in range(500)]
    room = _room(*((c, now - 10 + n / 1000) for n, c in enumerate(channels)))
    assert room.victim(now) is channels[0]
    assert sum(c.looked_at for c in channels) == 1


def test_the_listen_backlog_is_the_kernels_most(tmp_path: Path) -> None:
    somaxconn = tmp_path / "somaxconn"
    somaxconn.write_text("4096\n")
    assert listen_backlog(somaxconn) == 4096
    assert listen_backlog(tmp_path / "missing") == 4096
