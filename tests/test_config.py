"""Config loading and validation, driven by fixture files.

Each file in ``fixtures/config/bad`` states, in ``# expect:`` comments, the exact
report lines it must produce (file, line, key path, message); files in
``fixtures/config/good`` must load without a problem.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from server.config import warnings as config_warnings
from server.core.secret import Secret
from server.validation import ConfigError, load_config, parse_config
from tests.conftest import REPO, run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "config"
BAD = sorted((FIXTURES / "bad").glob("*.yaml"))
GOOD = sorted((FIXTURES / "good").glob("*.yaml"))


def expected_lines(path: Path) -> list[str]:
    prefix = "# expect: "
    return [
        line[len(prefix) :] for line in path.read_text().splitlines() if line.startswith(prefix)
    ]


def test_fixture_table_is_large_enough() -> None:
    assert len(BAD) >= 20
    assert all(expected_lines(p) for p in BAD), "every bad fixture states its expected report"


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_reports_exact_location_and_message(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(path.read_text(), path.name, environ={})
    assert [str(p) for p in caught.value.problems] == expected_lines(path)


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_config_loads(path: Path) -> None:
    load_config(path, environ={})


def test_demo_config_is_valid() -> None:
    config = load_config(REPO / "examples" / "demo.yaml", environ={})
    assert {s.type for s in config.services} >= {"python_process", "host", "http"}


def test_defaults_match_documentation() -> None:
    config = parse_config("services: []\n", "minimal.yaml", environ={})
    assert config.clickhouse.embedded_path == "var/lightbulb"
    assert config.clickhouse.database == "monitor"
    assert config.clickhouse.retention_days == 90
    assert config.clickhouse.embedded
    assert config.dashboard.port == 8080


@pytest.mark.parametrize("text", ["", "\n  \n    \n", "# all\n  # comments\n", "---\n...\n"])
def test_an_empty_document_is_refused_naming_file_and_fix(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cut.yaml", environ={})
    assert [str(p) for p in caught.value.problems] == [
        "cut.yaml: empty configuration: the file holds no settings, only whitespace or "
        "comments (emptied or cut short?); restore it, or write `services: []` to run "
        "with no services"
    ]


def test_a_file_without_services_is_valid_but_warned_about() -> None:
    assert config_warnings(parse_config("dashboard: {port: 9000}", "f.yaml", environ={})) == [
        "f.yaml: warning: no `services:` key, so nothing is checked (a file cut short?); "
        "write `services: []` if that is meant"
    ]
    assert config_warnings(parse_config("services: []", "f.yaml", environ={})) == []


def test_durations_and_sizes_are_parsed() -> None:
    config = load_config(FIXTURES / "good" / "full.yaml", environ={})
    assert config.services[0].interval == timedelta(seconds=15)
    assert config.services[1].interval == timedelta(minutes=1)
    assert config.alert_rules[0].for_ == timedelta(minutes=1)
    assert config.scheduler.spool_max_bytes == 2**30


def test_env_expansion_with_default_and_value() -> None:
    text = "clickhouse:\n  database: ${DB:-monitor}\n  user: ${CH_USER}\n"
    assert parse_config(text, "f.yaml", environ={"CH_USER": "bob"}).clickhouse.database == "monitor"
    config = parse_config(text, "f.yaml", environ={"DB": "other", "CH_USER": "bob"})
    assert (config.clickhouse.database, config.clickhouse.user) == ("other", "bob")


def test_env_value_cannot_inject_yaml_structure() -> None:
    config = parse_config(
        "clickhouse:\n  user: ${U}\n", "f.yaml", environ={"U": "x\nretention_days: 1"}
    )
    assert config.clickhouse.user == "x\nretention_days: 1"
    assert config.clickhouse.retention_days == 90


def test_clickhouse_env_overrides_win_over_file() -> None:
    text = "clickhouse:\n  hosts: [file-host:9000]\n  user: fileuser\n"
    env = {
        "CLICKHOUSE_HOST": "env-a,env-b",
        "CLICKHOUSE_PORT": "9440",
        "CLICKHOUSE_USER": "envuser",
        "CLICKHOUSE_PASSWORD": "pw",
        "CLICKHOUSE_DATABASE": "envdb",
        "CLICKHOUSE_SECURE": "true",
        "CLICKHOUSE_CA_CERT": "/ca.pem",
    }
    ch = parse_config(text, "f.yaml", environ=env).clickhouse
    assert ch.hosts == ["env-a:9440", "env-b:9440"]
    assert (ch.user, ch.password.reveal(), ch.database) == ("envuser", "pw", "envdb")
    assert ch.secure and ch.ca_cert == "/ca.pem"


def test_clickhouse_port_alone_applies_to_file_hosts() -> None:
    text = "clickhouse:\n  hosts: [a:9000, b:9000]\n"
    ch = parse_config(text, "f.yaml", environ={"CLICKHOUSE_PORT": "9001"}).clickhouse
    assert ch.hosts == ["a:9001", "b:9001"]


def test_bad_clickhouse_env_override_is_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "services: []", "f.yaml", environ={"CLICKHOUSE_HOST": "h", "CLICKHOUSE_PORT": "x"}
        )
    assert str(caught.value.problems[0]) == (
        "environment CLICKHOUSE_HOST/CLICKHOUSE_PORT: "
        'expected a host name and a port number, got "h:x"'
    )


def test_password_never_appears_in_repr_or_errors() -> None:
    text = "clickhouse:\n  password: ${PW}\n  retention_days: never\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml", environ={"PW": "hunter2-secret"})
    assert "hunter2-secret" not in caught.value.report()
    config = parse_config("clickhouse:\n  password: ${PW}\n", "f.yaml", environ={"PW": "hunter2"})
    assert isinstance(config.clickhouse.password, Secret)
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.model_dump())


def test_raw_block_keeps_env_references_unexpanded() -> None:
    config = load_config(FIXTURES / "good" / "full.yaml", environ={"LB_TEST_TOKEN": "t0ps3cret"})
    assert config.services[0].block()["headers"]["Authorization"] == "Bearer t0ps3cret"
    assert config.raw_block(0)["headers"]["Authorization"] == "Bearer ${LB_TEST_TOKEN:-none}"


def test_glob_and_stack_selectors_in_rules() -> None:
    base = "services:\n  - {id: api-1, type: host, stack: web}\nalert_rules:\n"
    for selector in ("api-*", "stack:web", "api-1"):
        rule = f"  - {{id: r, service: '{selector}', condition: 'status >= FAILED'}}\n"
        parse_config(base + rule, "f", {})
    with pytest.raises(ConfigError):
        parse_config(
            base + "  - {id: r, service: 'db-*', condition: 'status >= FAILED'}\n", "f", {}
        )


def test_config_check_prints_one_line_summary() -> None:
    result = run_cli("-m", "server.cli", "config", "check", "--config", "examples/demo.yaml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("examples/demo.yaml: OK: 3 services (3 enabled), 2 relations")


@pytest.mark.parametrize("name", ["27_many_problems", "57_tags_on_keys"])
def test_config_check_reports_every_problem_without_traceback(name: str) -> None:
    bad = FIXTURES / "bad" / f"{name}.yaml"
    result = run_cli("-m", "server.cli", "config", "check", "--config", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    expected = [line.replace(bad.name, str(bad)) for line in expected_lines(bad)]
    summary = f"{len(expected)} problems found; nothing was started."
    assert result.stderr.splitlines() == [*expected, summary]


def test_missing_config_file_is_a_clear_error() -> None:
    result = run_cli("-m", "server.cli", "config", "check", "--config", "nope.yaml")
    assert result.returncode == 2
    assert result.stderr.startswith("nope.yaml: file not found; pass --config PATH")


@pytest.mark.parametrize(
    "bind", ["127.0.0.1", "127.0.0.2", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "localhost"]
)
def test_a_loopback_bind_needs_no_auth(bind: str) -> None:
    config = parse_config(f'services: []\ndashboard: {{bind: "{bind}"}}\n', "f.yaml", {})
    assert config.dashboard.bind == bind


@pytest.mark.parametrize(
    "bind", ["0.0.0.0", "::", "192.0.2.1", "::ffff:10.0.0.1", "2001:db8::1", "lb.example"]
)
def test_a_bind_reachable_from_other_machines_needs_auth(bind: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f'services: []\ndashboard: {{bind: "{bind}"}}\n', "f.yaml", {})
    assert [p.path for p in caught.value.problems] == [("dashboard", "bind")]
