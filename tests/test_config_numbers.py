"""Config numbers are plain decimal in ASCII digits, wherever they are written.

Attack on issue 14: ``metric x > \u0661`` (an Arabic-Indic digit) and ``> 1_000`` loaded,
because Python's ``float()`` reads both. The same holds for text from ``${VAR}`` and
for what YAML 1.1 types as a number (``8_080``, ``0x1F``, octal ``017``, base-60
``1:30``): each is refused at its key with the plain spelling to write instead.
"""

from __future__ import annotations

import pytest

from server.alerting.conditions import ConditionError, parse_condition
from server.core import numbers
from server.validation import ConfigError, parse_config
from tests.support.config_fields import numeric_settings

EXPECTED = numbers.EXPECTED


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml", environ=environ or {})
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("written", "meant"),
    [("\u0661", "1"), ("1_000", "1000"), ("\uff15", "5"), ("\u0661\u0664.\u0664", "14.4")],
)
@pytest.mark.parametrize(
    "condition", ["metric x > {}", "log_errors >= {}", "slo_burn 1h 5m > {}", "anomaly m z > {}"]
)
def test_a_condition_number_in_other_digits_is_refused_with_the_plain_one(
    condition: str, written: str, meant: str
) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(condition.format(written))
    assert str(caught.value) == f'"{written}" is not {EXPECTED}; write {meant}'


@pytest.mark.parametrize("plain", ["1", "-2", "0.5", ".5", "1e3", "1.5E-3", "+7", "0"])
def test_plain_decimal_numbers_still_parse_in_conditions(plain: str) -> None:
    parsed = parse_condition(f"metric x > {plain}")
    assert parsed.compare.value == float(plain)  # type: ignore[union-attr]


def test_yaml_numbers_spelled_otherwise_are_refused_at_their_keys() -> None:
    text = (
        "dashboard: {port: 8_080}\n"
        "clickhouse: {retention_days: 030}\n"
        "scheduler: {max_workers: 0x10, batch_rows: 1:30}\n"
        "services:\n"
        "  - {id: a, type: tcp, tcp: {host: 127.0.0.1, port: 0b1010000}}\n"
        "alert_rules:\n"
        "  - {id: r, service: a, condition: 'metric x > threshold', threshold: 1_000.5}\n"
    )
    assert problems(text) == [
        f"f.yaml:1 dashboard.port: expected {EXPECTED}, got 8_080 (YAML reads it as 8080); "
        "write 8080",
        f"f.yaml:2 clickhouse.retention_days: expected {EXPECTED}, got 030 (YAML reads it as "
        "24); write 24",
        f"f.yaml:3 scheduler.batch_rows: expected {EXPECTED}, got 1:30 (YAML reads it as 90); "
        "write 90",
        f"f.yaml:3 scheduler.max_workers: expected {EXPECTED}, got 0x10 (YAML reads it as 16); "
        "write 16",
        f"f.yaml:5 services[0].tcp.port: expected {EXPECTED}, got 0b1010000 (YAML reads it as "
        "80); write 80",
        f"f.yaml:7 alert_rules[0].threshold: expected {EXPECTED}, got 1_000.5 (YAML reads it "
        "as 1000.5); write 1000.5",
    ]


def test_a_number_refused_for_another_reason_is_reported_once() -> None:
    # a string setting says "quote it"; an out-of-range one names the range
    found = problems("clickhouse: {user: 0x1F}\ndashboard: {port: 99_999}\n")
    assert found == [
        'f.yaml:1 clickhouse.user: expected a string, got 0x1F unquoted; quote it: "0x1F"',
        "f.yaml:2 dashboard.port: expected a number <= 65535, got 99_999 (YAML reads it as 99999)",
    ]


@pytest.mark.parametrize(("value", "meant"), [("\u0668\u0660", "80"), ("8_0", "80")])
def test_env_text_in_other_digits_is_refused_with_the_plain_number(value: str, meant: str) -> None:
    text = "dashboard: {port: '${PORT}'}\ntemporal: {max_visibility_rps: '${RPS}'}\n"
    found = problems(text, {"PORT": value, "RPS": value})
    assert found == [
        f'f.yaml:1 dashboard.port: expected {EXPECTED}, got "{value}"; write {meant} '
        "(from ${PORT})",
        f'f.yaml:2 temporal.max_visibility_rps: expected {EXPECTED}, got "{value}"; write '
        f"{meant} (from ${{RPS}})",
    ]


def test_a_crontab_host_port_and_clock_time_take_ascii_digits_only() -> None:
    text = (
        "clickhouse: {hosts: ['ch1:\u0669\u0660\u0660\u0660']}\n"
        "report: {time: '0\u0662:00'}\n"
        "services: []\n"
        "silences:\n"
        "  - {service: '*', cron: '\u0663\u0660 2 * * SUN', duration: 1h}\n"
    )
    found = problems(text)
    assert [p.split(": ")[0] for p in found] == [
        "f.yaml:1 clickhouse.hosts[0]",
        "f.yaml:2 report.time",
        "f.yaml:5 silences[0].cron",
    ]
    assert found[2].endswith("write it in ASCII: digits 0-9, names like SUN")


@pytest.mark.parametrize(("section", "key"), numeric_settings())
def test_every_numeric_section_setting_refuses_underscored_digits(section: str, key: str) -> None:
    found = problems(f"services: []\n{section}: {{{key}: 1_0}}\n")
    assert any(p.startswith(f"f.yaml:2 {section}.{key}: ") for p in found), found
    mine = [p for p in found if p.startswith(f"f.yaml:2 {section}.{key}: ")]
    assert len(mine) == 1 and "1_0" in mine[0], mine


def test_a_number_under_an_anchor_used_twice_is_reported_once_where_written() -> None:
    text = (
        "x-tcp: &tcp {host: 127.0.0.1, port: 8_080}\n"
        "services:\n"
        "  - {id: a, type: tcp, tcp: {<<: *tcp}}\n"
        "  - {id: b, type: tcp, tcp: *tcp}\n"
    )
    assert problems(text) == [
        f"f.yaml:1 services[0].tcp.port: expected {EXPECTED}, got 8_080 (YAML reads it as "
        "8080); write 8080"
    ]


def test_a_leading_zero_is_refused_in_a_whole_number_setting_from_the_file_and_from_env() -> None:
    # YAML reads 017 as octal 15; the same text from ${VAR} must not quietly be 17
    assert problems("clickhouse: {retention_days: 017}\n") == [
        f"f.yaml:1 clickhouse.retention_days: expected {EXPECTED}, got 017 (YAML reads it as "
        "15); write 15"
    ]
    found = problems("clickhouse: {retention_days: '${DAYS}'}\n", {"DAYS": "017"})
    assert found == [
        f'f.yaml:1 clickhouse.retention_days: expected {EXPECTED}, got "017"; write 17 '
        "(from ${DAYS})"
    ]


@pytest.mark.parametrize(
    ("text", "whole"),
    [("17", 17), ("-0", 0), ("+7", 7), ("9e1", 90), ("2.0", 2), ("1" * 40, int("1" * 40)),
     ("017", None), ("1_0", None), ("0x1F", None), ("0.5", None), ("12e-1", None),
     ("\u0661", None), ("1" * 41, None)],
)  # fmt: skip
def test_a_whole_number_is_read_by_the_plain_decimal_rule(text: str, whole: int | None) -> None:
    assert numbers.read_whole(text) == whole


@pytest.mark.parametrize(
    ("value", "shown"),
    [(1e16, "10000000000000000"), (1e300, "1" + "0" * 300),
     (123456789012345678, "123456789012345678"), (float(123456789012345678), "123456789012345680"),
     (1e-7, "0.0000001"), (-0.0, "0"), (1000.0, "1000"), (0.5, "0.5")],
)  # fmt: skip
def test_a_fix_spells_a_number_out_in_plain_decimal(value: float, shown: str) -> None:
    assert numbers.spelled(value) == shown


def test_a_large_number_in_other_digits_is_refused_with_its_plain_spelling() -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition("metric x > 1_0e15")
    assert str(caught.value) == f'"1_0e15" is not {EXPECTED}; write 10000000000000000'
    found = problems("dashboard: {port: '${PORT}'}\n", {"PORT": "1_0e300"})
    assert found == [
        f'f.yaml:1 dashboard.port: expected {EXPECTED}, got "1_0e300"; write 10000000…00000000 '
        "(302 characters) (from ${PORT})"
    ]
