"""``status_page.groups`` against the services: an unknown id is an error, a disabled one
a warning that ``lightbulb config check`` prints with its line (attack on issue 14: a
disabled id was accepted and left out of /status without a word)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import warnings as config_warnings
from server.validation import ConfigError, parse_config
from tests.conftest import run_cli

SERVICES = """services:
  - {id: web, type: tcp, tcp: {host: 127.0.0.1, port: 9}}
  - {id: offsvc, type: tcp, enabled: false, tcp: {host: 127.0.0.1, port: 9}}
  - {id: old-1, type: tcp, stack: legacy, enabled: false, tcp: {host: 127.0.0.1, port: 9}}
  - {id: old-2, type: tcp, stack: legacy, enabled: false, tcp: {host: 127.0.0.1, port: 9}}
status_page:
  groups:
"""


def test_an_unknown_id_in_a_group_is_an_error_at_its_line() -> None:
    text = SERVICES + "    - {name: Main, services: [web, nosuch]}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "s.yaml", {})
    assert [str(p) for p in caught.value.problems] == [
        's.yaml:8 status_page.groups[0].services[1]: "nosuch" matches no service; use a '
        "service id, stack:<name> or glob"
    ]


def test_a_disabled_id_or_a_selector_of_disabled_services_is_a_located_warning() -> None:
    text = SERVICES + (
        "    - {name: Main, services: [web, offsvc]}\n"
        "    - name: Legacy\n"
        "      services: ['old-*', 'stack:legacy']\n"
    )
    assert config_warnings(parse_config(text, "s.yaml", {})) == [
        's.yaml:8 status_page.groups[0].services[1]: warning: "offsvc" is disabled (enabled: '
        'false), so /status shows nothing for it in group "Main"; enable the service or take '
        "it out of the group",
        's.yaml:10 status_page.groups[1].services[0]: warning: "old-*" matches only disabled '
        'services ("old-1", "old-2"), so /status shows nothing for it in group "Legacy"; '
        "enable the service or take it out of the group",
        's.yaml:10 status_page.groups[1].services[1]: warning: "stack:legacy" matches only '
        'disabled services ("old-1", "old-2"), so /status shows nothing for it in group '
        '"Legacy"; enable the service or take it out of the group',
    ]


def test_a_selector_that_also_picks_an_enabled_service_warns_of_nothing() -> None:
    text = SERVICES + "    - {name: Main, services: ['*', 'stack:default']}\n"
    assert config_warnings(parse_config(text, "s.yaml", {})) == []


def test_config_check_prints_the_warning_and_still_passes(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SERVICES + "    - {name: Main, services: [web, offsvc]}\n")
    result = run_cli("-m", "server.cli", "config", "check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f'{path}:8 status_page.groups[0].services[1]: warning: "offsvc" is disabled (enabled: '
        'false), so /status shows nothing for it in group "Main"; enable the service or take '
        "it out of the group"
    ]
    assert result.stdout.startswith(f"{path}: OK: 4 services (1 enabled)")
