"""What is derived from the live configuration alone is worked out once per configuration."""

from __future__ import annotations

from server.core.latest import per_last
from server.validation import parse_config
from server.web.status_incidents import burn_rules

BURN = """
services:
  - id: api
    type: tcp
    tcp: {host: 127.0.0.1, port: 1}
    slo: {target: 99.9, window: 30d}
alert_rules:
  - {id: burn, service: api, condition: "slo_burn"}
  - {id: down, service: api, condition: "status >= FAILED"}
"""


def test_a_value_is_worked_out_once_per_object_and_again_for_a_new_one() -> None:
    calls: list[object] = []

    @per_last
    def work(obj: object) -> int:
        calls.append(obj)
        return len(calls)

    first, second = object(), object()
    assert [work(first), work(first), work(second), work(second), work(first)] == [1, 1, 2, 2, 3]
    assert calls == [first, second, first]


def test_burn_rules_are_parsed_once_per_configuration_and_anew_after_a_reload() -> None:
    config = parse_config(BURN, "t.yaml")
    found = burn_rules(config)
    assert found == {"burn"}
    assert burn_rules(config) is found  # the same configuration: not parsed again
    reloaded = parse_config(BURN.replace('"slo_burn"', '"status >= FAILED"'), "t.yaml")
    assert burn_rules(reloaded) == frozenset()
