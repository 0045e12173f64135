"""``alerting.dashboard_url`` starts every link in notices and the public status feed:
only an absolute http(s) address with an optional path prefix is taken; a script URL,
a query or fragment (links built after it break) and user:password@ are refused with
the fix, and a password is never quoted back."""

from __future__ import annotations

import pytest

from server.validation import ConfigError, parse_config


def problems(url: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"services: []\nalerting: {{dashboard_url: '{url}'}}\n", "f.yaml", environ={})
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)//",
        "data:text/html,x",
        "https://status.example.com/sub/?x=1#f",
        "https://status.example.com/?x=1",
        "https://status.example.com/#f",
        "ftp://status.example.com",
        "status.example.com",
        "/lightbulb",
        "https://",
        "https://h:99999",
        "https://h/a b",
        "https://h/a\tb",
    ],
)
def test_a_dashboard_url_links_cannot_be_built_on_is_refused_with_the_fix(url: str) -> None:
    [found] = problems(url)
    assert found.startswith("f.yaml:2 alerting.dashboard_url: expected an absolute http(s) ")
    assert 'without "?" or "#"' in found


def test_a_dashboard_url_with_a_password_is_refused_without_quoting_it() -> None:
    [found] = problems("https://ana:s3cret@status.example.com")
    assert found.startswith("f.yaml:2 alerting.dashboard_url: holds a user name or password")
    assert "s3cret" not in found and "ana" not in found


@pytest.mark.parametrize(
    "url",
    ["", "https://status.example.com", "http://10.0.0.5:8080/", "https://example.com/lightbulb/"],
)
def test_an_absolute_http_address_with_a_path_prefix_is_taken(url: str) -> None:
    config = parse_config(
        f"services: []\nalerting: {{dashboard_url: '{url}'}}\n", "f.yaml", environ={}
    )
    assert config.alerting.dashboard_url == url
