"""A setting takes the YAML type it is written in: nothing is coerced.

Attack report 2, items 5 and 9: unquoted ``01234567`` (octal 342391), ``0x1F`` or
``true`` given to a string setting (a token, a key) used to be stored as other
text; ``"8080"`` or ``true`` given to a number was turned into one. Text from the
environment has no YAML type, so ``${VAR}`` is read as the field's type.
"""

from __future__ import annotations

import pytest

from server.validation import ConfigError, parse_config


def _problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml", environ=environ or {})
    return [str(p) for p in caught.value.problems]


def test_unquoted_number_for_a_secret_is_refused_without_quoting_it() -> None:
    text = (
        "logs: {tokens: {ci: 01234567}}\n"
        "channels: {pd: {type: pagerduty, routing_key: 0x1F}}\n"
        "services:\n  - {id: a, type: temporal_count, "
        "temporal_count: {count_query: x, api_key: 012345670}}\n"
    )
    problems = _problems(text)
    assert [p.split(": ")[0] for p in problems] == [
        "f.yaml:1 logs.tokens.ci",
        "f.yaml:2 channels.pd.routing_key",
        "f.yaml:4 services[0].temporal_count.api_key",
    ]
    assert all("quote it" in p for p in problems)
    for shown in ("01234567", "342391", "0x1F", "31", "012345670", "2739128"):
        assert not any(shown in p for p in problems), shown


def test_env_text_takes_the_type_of_its_field() -> None:
    text = (
        "dashboard: {enabled: '${ON}', port: '${PORT}'}\n"
        "scheduler: {batch_rows: '${ROWS}'}\n"
        "temporal: {max_visibility_rps: '${RPS}'}\n"
        "clickhouse: {user: '${CH_USER}'}\n"
    )
    env = {"ON": "yes", "PORT": "8080", "ROWS": "500", "RPS": "2.5", "CH_USER": "0123"}
    config = parse_config(text, "f.yaml", environ=env)
    assert config.dashboard.enabled is True and config.dashboard.port == 8080
    assert config.scheduler.batch_rows == 500
    assert config.temporal.max_visibility_rps == 2.5
    assert config.clickhouse.user == "0123"


def test_env_text_that_is_no_number_is_refused_for_a_number() -> None:
    problems = _problems("dashboard: {port: '${PORT}'}\n", {"PORT": "http"})
    assert problems == [
        'f.yaml:1 dashboard.port: expected a whole number, got "http" (from ${PORT})'
    ]


def test_bad_env_value_in_a_secret_names_the_variable_not_the_value() -> None:
    text = "channels: {s: {type: slack, url: '${SLACK_URL}'}}\n"
    problems = _problems(text, {"SLACK_URL": "ftp://hooks.example/T0K3N-s3cr3t"})
    assert len(problems) == 1 and problems[0].startswith("f.yaml:1 channels.s.url: ")
    assert "(from ${SLACK_URL})" in problems[0]
    assert "T0K3N" not in problems[0]


def test_double_dollar_writes_a_literal_dollar_brace() -> None:
    text = "services:\n  - {id: a, type: host, label: 'costs $${1BAD} and $$5'}\n"
    assert parse_config(text, "f.yaml", environ={}).services[0].label == "costs ${1BAD} and $5"
