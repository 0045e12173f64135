"""chDB parameters: lists of strings reach the engine exactly, however they are sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.storage.embedded import EmbeddedStorage, _bind
from tests.support.hostile import HOSTILE_IDS, HOSTILE_TEXTS

LISTS = [
    ["svc-1"],
    ["", ""],  # empty strings are elements too
    ["a'b", "c\\d", "e,f", "[g]", "h\ti", "j\nk", "l\rm", "n\0o", "ü ✓ 日本"],
    HOSTILE_TEXTS,
    HOSTILE_IDS,
    ["has\x1fseparator", "x"],  # sent as an Array as before
    [f"svc-{i}" for i in range(1000)],
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStorage]:
    db = EmbeddedStorage(Path(tmp_path_factory.mktemp("params")) / "db", "monitor")
    db.execute("CREATE DATABASE IF NOT EXISTS monitor")
    db.execute(
        "CREATE TABLE monitor.t (service_id LowCardinality(String), n UInt32) "
        "ENGINE = MergeTree ORDER BY service_id"
    )
    db.execute("INSERT INTO monitor.t SELECT concat('svc-', toString(number)), number "
               "FROM numbers(5000)")  # fmt: skip
    yield db
    db.close()


@pytest.mark.parametrize("values", LISTS, ids=range(len(LISTS)))
def test_a_list_of_strings_arrives_element_for_element(
    store: EmbeddedStorage, values: list[str]
) -> None:
    rows = store.query("SELECT {ids:Array(String)} AS got, length({ids:Array(String)}) AS n",
                       {"ids": values})  # fmt: skip
    assert rows[0]["got"] == values and rows[0]["n"] == len(values)


def test_an_id_list_filters_by_the_sort_key_and_maps_names(store: EmbeddedStorage) -> None:
    ids = [f"svc-{i}" for i in range(0, 5000, 7)] + ["nope", "svc-1'--"]
    names = [f"g{i % 3}" for i in range(len(ids))]
    rows = store.query(
        "SELECT transform(service_id, {ids:Array(String)}, {names:Array(String)}, '') AS g, "
        "count() AS c, sum(n) AS s FROM monitor.t WHERE service_id IN {ids:Array(String)} "
        "GROUP BY g ORDER BY g",
        {"ids": ids, "names": names},
    )
    want: dict[str, list[int]] = {}
    for i in range(0, 5000, 7):
        g = names[i // 7]
        want.setdefault(g, [0, 0])
        want[g][0] += 1
        want[g][1] += i
    assert {r["g"]: [r["c"], r["s"]] for r in rows} == want


def test_only_lists_used_solely_as_string_arrays_are_joined() -> None:
    sql, bound = _bind("SELECT {a:Array(String)}, {b:Array(String)}, {c:Array(UInt32)}, "
                       "{d:Array(String)}, {d: Array(String)}, {e:Array(String)}",
                       {"a": ["x", "y"], "b": [], "c": [1, 2], "d": ["z"],
                        "e": ["p\x1fq"]})  # fmt: skip
    assert "splitByChar('\\x1f', {a:String})" in sql and bound["a"] == "x\x1fy"
    assert "{b:Array(String)}" in sql and bound["b"] == "[]"  # empty: no element to split
    assert bound["c"] == "[1,2]"
    assert "{d:Array(String)}" in sql and bound["d"] == "['z']"  # used twice, differently
    assert "{e:Array(String)}" in sql  # holds the separator
