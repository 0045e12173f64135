"""A number too long for a float (400 digits) is refused at its key like any other
out-of-range number: file:line, key path, the value abbreviated, every problem at once."""

from __future__ import annotations

import typing

import pytest

from server.validation import ConfigError, parse_config
from tests.support.config_fields import numeric_settings

BIG = "9" * 400
SHOWN = "99999999…99999999 (400 characters)"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml", environ={})
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(("section", "key"), numeric_settings())
def test_a_400_digit_section_setting_is_refused_at_its_key_abbreviated(
    section: str, key: str
) -> None:
    found = problems(f"services: []\n{section}: {{{key}: {BIG}}}\n")
    mine = [p for p in found if p.startswith(f"f.yaml:2 {section}.{key}: ")]
    assert len(mine) == 1, found
    assert SHOWN in mine[0] and BIG not in mine[0], mine


def test_400_digit_numbers_everywhere_are_all_reported_together() -> None:
    text = (
        f"clickhouse: {{retention_days: {BIG}}}\n"
        f"dashboard: {{port: {BIG}}}\n"
        f"alerting: {{retries: {BIG}, flapping: {{window: {BIG}}}}}\n"
        "services:\n"
        "  - {id: a, type: command, command: {command: [/bin/true]}, slo: {target: " + BIG + "}}\n"
        "  - {id: b, type: command, command: {command: [/bin/true]}, interval: often}\n"
        "alert_rules:\n"
        f"  - {{id: r, service: a, condition: 'metric x > threshold', threshold: {BIG}}}\n"
        f"  - {{id: s, service: a, condition: 'metric x > {BIG}'}}\n"
    )
    found = problems(text)
    where = [p.split(": ", 1)[0] for p in found]
    assert sorted(where) == sorted(
        [
            "f.yaml:1 clickhouse.retention_days",
            "f.yaml:2 dashboard.port",
            "f.yaml:3 alerting.retries",
            "f.yaml:3 alerting.flapping.window",
            "f.yaml:5 services[0].slo.target",
            "f.yaml:6 services[1].interval",
            "f.yaml:8 alert_rules[0].threshold",
            "f.yaml:9 alert_rules[1].condition",
        ]
    ), found
    assert all(BIG not in p for p in found), found


def test_a_long_number_yaml_reads_otherwise_is_refused_abbreviated() -> None:
    hex_digits = "F" * 400
    found = problems(f"services: []\nclickhouse: {{retention_days: 0x{hex_digits}}}\n")
    assert len(found) == 1 and found[0].startswith("f.yaml:2 clickhouse.retention_days: ")
    assert "0xFFFFFF…FFFFFFFF (402 characters)" in found[0], found


def _parses(text: str) -> object:
    return parse_config(text, "f.yaml", environ={})


SERVICE = "services:\n  - {id: a, type: command, command: {command: [/bin/true]}, "


def test_exponent_numbers_are_numbers_in_the_file_as_in_conditions() -> None:
    config: typing.Any = _parses(
        "clickhouse: {retention_days: 9e1}\n"
        "dashboard: {port: 8.08e3}\n" + SERVICE + "slo: {target: 9.99e1}}\n"
        "alert_rules:\n"
        "  - {id: r, service: a, condition: 'metric x > threshold', threshold: 1e3}\n"
        "  - {id: s, service: a, condition: 'metric x > 1e3'}\n"
    )
    assert config.clickhouse.retention_days == 90
    assert config.dashboard.port == 8080
    assert config.services[0].slo.target == 99.9
    assert config.alert_rules[0].threshold == 1000


def test_an_exponent_number_that_is_not_whole_or_not_a_float_is_refused_as_written() -> None:
    found = problems(
        "clickhouse: {retention_days: 9.5e0}\n" + SERVICE + "slo: {target: 1e-400}}\n"
        "  - {id: b, type: command, command: {command: [/bin/true]}, "
        "slo: {target: 99.999999999999999}}\n"
        "  - {id: c, type: command, command: {command: [/bin/true]}, label: 1e3}\n"
    )
    assert found == [
        "f.yaml:1 clickhouse.retention_days: expected a whole number, got 9.5e0",
        "f.yaml:3 services[0].slo.target: expected a percentage above 0 and below 100 like "
        '99.9, without "%", got 1e-400 (a float rounds it to 0)',
        "f.yaml:4 services[1].slo.target: expected a percentage above 0 and below 100 like "
        '99.9, without "%", got 99.999999999999999 (a float rounds it to 100)',
        'f.yaml:5 services[2].label: expected a string, got 1e3 unquoted; quote it: "1e3"',
    ]


def test_a_target_too_large_for_a_float_is_shown_as_written() -> None:
    found = problems(SERVICE + "slo: {target: 1" + BIG + ".5}}\n")
    assert len(found) == 1 and found[0].endswith(
        "got 19999999…999999.5 (403 characters) (too large to read as a number)"
    ), found


def test_a_number_longer_than_python_reads_is_refused_at_its_key() -> None:
    # int() refuses text of over 4300 digits (ValueError): YAML's reading of it must not
    found = problems(f"services: []\nclickhouse: {{retention_days: {'9' * 5000}}}\n")
    assert len(found) == 1 and found[0].startswith("f.yaml:2 clickhouse.retention_days: "), found
    assert "99999999…99999999 (5000 characters)" in found[0], found


def test_an_exponent_whole_number_from_the_environment_is_read_as_in_the_file() -> None:
    text = "services: []\nclickhouse: {retention_days: '${R}'}\n"
    config: typing.Any = parse_config(text, "f.yaml", environ={"R": "9e1"})
    assert config.clickhouse.retention_days == 90


def test_a_400_digit_threshold_says_it_is_too_large_to_read() -> None:
    text = (
        "services: [{id: a, type: host}]\n"
        "alert_rules: [{id: r, service: a, condition: 'metric x > threshold', "
        f"threshold: {BIG}}}]\n"
    )
    assert problems(text) == [
        f"f.yaml:2 alert_rules[0].threshold: expected a number, got {SHOWN}, too large to read "
        "as one (a float holds about 1.8e308)"
    ]
