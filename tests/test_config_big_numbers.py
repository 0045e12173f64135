"""A number too long for a float (400 digits) is refused at its key like any other
out-of-range number: file:line, key path, the value abbreviated, every problem at once."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from server.config.models import Config
from server.validation import ConfigError, parse_config

BIG = "9" * 400
SHOWN = "99999999…99999999 (400 characters)"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml", environ={})
    return [str(p) for p in caught.value.problems]


def _section_numbers() -> list[tuple[str, str]]:
    """(section, key) of every int or float setting directly in a section model."""
    found = []
    for section, info in Config.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for name, field in model.model_fields.items():
            args = typing.get_args(field.annotation) or (field.annotation,)
            if any(a in (int, float) for a in args):
                found.append((section, field.alias or name))
    return found


@pytest.mark.parametrize(("section", "key"), _section_numbers())
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
