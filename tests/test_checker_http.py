"""The http checker against a real local server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from checkers.base import CheckContext, Status
from checkers.http import HttpChecker, HttpSettings, json_path_get, parse_status_spec
from server.runner import run_check
from tests.conftest import REPO, free_port
from tests.support.hostile_targets import HostileHttp
from tests.support.http_target import Target

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    server = Target()
    yield server
    server.close()


def check(timeout: float = 5, now: datetime = NOW, **settings: Any) -> Any:
    return run_check(HttpChecker(HttpSettings(**settings)), CheckContext("h", now, timeout))


def test_spaces_and_non_ascii_in_the_url_are_percent_encoded_on_the_wire(
    target: Target,
) -> None:
    sent = "/echo/a%20b/%C3%A9?q=x%20y&r=%2F"  # an escape already made stays as it is
    result = check(url=target.url("/echo/a b/é?q=x y&r=%2F"), body_contains=sent)
    assert result.status == Status.OK, result.message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:99999/", "with a port 1 to 65535"),
        ("http://127.0.0.1:0/", "with a port 1 to 65535"),
        ("http://127.0.0.1:x/", "with a port 1 to 65535"),
        ("http://exa mple.com/", "with a host name of letters, digits, dots and dashes"),
        ("http://[::1/", "with a valid host"),
        ("http://h/p HTTP/1.1\r\nX-Injected: yes", "without control characters"),
        ("http://h/p\tq", "without control characters"),
        ("http://h/p\x00", "without control characters"),
        ("ftp://h/", "expected an http:// or https:// URL"),
    ],
)
def test_a_url_that_cannot_be_fetched_is_refused_at_load(url: str, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        HttpSettings(url=url)
    assert expected in str(caught.value)


def test_200_is_ok_with_response_time(target: Target) -> None:
    result = check(url=target.url("/ok"))
    assert result.status == Status.OK and result.message.startswith("HTTP 200 in")
    assert result.response_time_ms is not None


def test_500_is_failed(target: Target) -> None:
    result = check(url=target.url("/error"))
    assert (result.status, result.message) == (Status.FAILED, "HTTP 500, expected 200-399")


def test_expected_status_list_and_ranges(target: Target) -> None:
    assert check(url=target.url("/error"), expect_status=[500]).status == Status.OK
    assert check(url=target.url("/ok"), expect_status=["5xx"]).status == Status.FAILED
    assert parse_status_spec("2xx") == (200, 299) and parse_status_spec("200-204") == (200, 204)


def test_slow_response_degrades(target: Target) -> None:
    result = check(url=target.url("/slow?t=0.3"), degraded_over_ms=100)
    assert result.status == Status.DEGRADED and result.message.startswith("slow:")


def test_slower_than_timeout_fails(target: Target) -> None:
    result = check(url=target.url("/slow?t=2"), timeout=0.3)
    assert (result.status, result.message) == (
        Status.FAILED,
        f"GET {target.url('/slow?t=2')}: timed out after 0.3 s",
    )


def test_wrong_body_fails(target: Target) -> None:
    result = check(url=target.url("/ok"), body_contains="maintenance")
    assert (result.status, result.message) == (Status.FAILED, "body does not contain 'maintenance'")
    assert check(url=target.url("/ok"), body_contains='"status"').status == Status.OK


def test_json_path_equals(target: Target) -> None:
    assert (
        check(url=target.url("/ok"), json_path="$.data.items[0].state", equals="green").status
        == Status.OK
    )
    bad = check(url=target.url("/ok"), json_path="$.data.items[0].state", equals="red")
    assert bad.message == "$.data.items[0].state is 'green', expected 'red'"
    missing = check(url=target.url("/ok"), json_path="$.nope")
    assert missing.message == "$.nope not found in body"
    assert (
        check(url=target.url("/error"), expect_status=[500], json_path="$.x").message
        == "body is not JSON"
    )


def test_closed_socket_fails(target: Target) -> None:
    result = check(url=target.url("/close"))
    assert result.status == Status.FAILED


def test_refused_connection_fails() -> None:
    result = check(url=f"http://127.0.0.1:{free_port()}/")
    assert result.status == Status.FAILED and result.message.endswith("connection refused")


def test_headers_are_sent(target: Target) -> None:
    settings = {"url": target.url("/headers"), "json_path": "$.Authorization"}
    sent = check(headers={"Authorization": "Bearer x"}, equals="Bearer x", **settings)
    assert sent.status == Status.OK
    assert check(equals="Bearer x", **settings).message == "$.Authorization not found in body"


def test_credentials_in_the_url_are_sent_as_basic_auth_and_kept_out_of_messages(
    target: Target,
) -> None:
    port = target.server.server_address[1]
    good = check(url=f"http://u%20s:p%2Fw%3Ax@127.0.0.1:{port}/basic", body_contains="/basic")
    assert good.status == Status.OK, good.message
    # the request line and Host carry no userinfo
    assert (
        check(
            url=f"http://u%20s:p%2Fw%3Ax@127.0.0.1:{port}/basic",
            body_contains=f"/basic 127.0.0.1:{port}",
        ).status
        == Status.OK
    )
    bad = check(url=f"http://u%20s:wrong-secret@127.0.0.1:{port}/basic")
    assert bad.status == Status.FAILED and bad.message.startswith("HTTP 401")
    assert check(url=f"http://u%20s@127.0.0.1:{port}/basic").status == Status.FAILED
    # an explicit Authorization header wins over the URL's
    explicit = check(
        url=f"http://u%20s:wrong-secret@127.0.0.1:{port}/headers",
        json_path="$.authorization",  # the server echoes names as sent
        equals="Bearer x",
        headers={"authorization": "Bearer x"},
    )
    assert explicit.status == Status.OK, explicit.message
    refused = check(url=f"http://u%20s:wrong-secret@127.0.0.1:{free_port()}/basic")
    assert refused.status == Status.FAILED
    assert "wrong-secret" not in refused.message and "u%20s" not in refused.message
    assert HttpChecker(HttpSettings(url=f"http://a:b@127.0.0.1:{port}/")).describe() == (
        f"GET http://127.0.0.1:{port}/"
    )


def test_credentials_follow_a_redirect_only_on_the_same_origin(target: Target) -> None:
    port = target.server.server_address[1]
    same = check(url=f"http://u%20s:p%2Fw%3Ax@127.0.0.1:{port}/goto?/basic")
    assert same.status == Status.OK, same.message
    other = Target()
    try:
        for headers in ({}, {"Authorization": "Bearer x"}):
            leaked = check(
                url=f"http://u%20s:p%2Fw%3Ax@127.0.0.1:{port}/goto?{other.url('/headers')}",
                json_path="$.Authorization",
                headers=headers,
            )
            assert leaked.message == "$.Authorization not found in body"
    finally:
        other.close()


def test_tls_certificate_near_expiry_degrades(tmp_path: Path) -> None:
    server = Target(tls_dir=tmp_path, days=5)
    try:
        result = check(url=server.url("/ok"), ca_cert=server.cert, cert_expiry_days=14)
        assert result.status == Status.DEGRADED
        assert (
            "certificate expires in 4." in result.message
            or "certificate expires in 5.0" in result.message
        )
        days = {m.name: m.value for m in result.metrics}["cert_expiry_days"]
        assert 4 < days <= 5
        assert (
            check(url=server.url("/ok"), ca_cert=server.cert, cert_expiry_days=2).status
            == Status.OK
        )
        unverified = check(url=server.url("/ok"))
        assert unverified.status == Status.FAILED and "TLS error" in unverified.message
        assert check(url=server.url("/ok"), verify_tls=False).status == Status.OK
    finally:
        server.close()


def test_cert_expiry_comes_from_the_connection_and_counts_down(tmp_path: Path) -> None:
    server = Target(tls_dir=tmp_path, days=5)
    try:
        checker = HttpChecker(HttpSettings(url=server.url("/ok"), verify_tls=False))
        first = run_check(checker, CheckContext("h", NOW, 5))
        later = run_check(checker, CheckContext("h", NOW + timedelta(minutes=30), 5))
        day0 = first.details["cert_expiry_days"]
        assert later.details["cert_expiry_days"] == pytest.approx(day0 - 30 / 1440, abs=0.01)
    finally:
        server.close()


def test_settings_errors_are_worded() -> None:
    with pytest.raises(ValueError, match="expected an http:// or https:// URL"):
        HttpSettings(url="ftp://x")
    for bad in (999, 99, 600, "000", "099-200", "500-100", "200-600", "7xx", "0xx"):
        with pytest.raises(ValueError, match="expected a status 100 to 599"):
            HttpSettings(url="http://x", expect_status=[200, bad])
    with pytest.raises(ValueError, match="low end above its high end"):
        HttpSettings(url="http://x", expect_status=["500-100"])
    assert parse_status_spec("100-599") == (100, 599) and parse_status_spec(599) == (599, 599)
    with pytest.raises(ValueError, match="equals needs json_path"):
        HttpSettings(url="http://x", equals=1)


def test_json_path_subset() -> None:
    doc = {"a": [{"b": 1}, {"b": 2}]}
    assert json_path_get(doc, "$.a[1].b") == 2 and json_path_get(doc, "a[0]") == {"b": 1}
    with pytest.raises(KeyError):
        json_path_get(doc, "$.a[5]")


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileHttp]:
    server = HostileHttp()
    yield server
    server.close()


RSS_PROBE = """
import sys
from datetime import UTC, datetime
from checkers.base import CheckContext
from checkers.http import HttpChecker, HttpSettings
from server.runner import run_check
settings = dict(url=sys.argv[1])
if len(sys.argv) > 2:
    settings["body_contains"] = sys.argv[2]
result = run_check(HttpChecker(HttpSettings(**settings)), CheckContext("h", datetime.now(UTC), 20))
print(result.status.name, result.message)
# VmHWM: this process image's peak (ru_maxrss would carry the forking parent's over exec)
status = open("/proc/self/status").read()
print(int(status.split("VmHWM:")[1].split()[0]) // 1024)
"""


@pytest.mark.parametrize("needle", [None, "never there"])
def test_a_1_gib_body_is_never_read_into_memory(hostile: HostileHttp, needle: str | None) -> None:
    args = [sys.executable, "-c", RSS_PROBE, hostile.url("/huge")] + ([needle] if needle else [])
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    verdict, peak_mb = done.stdout.splitlines()
    if needle is None:
        assert verdict.startswith("OK HTTP 200 in")
    else:
        assert verdict == (
            "FAILED body does not contain 'never there' "
            "(body larger than max_body 1 MiB; only that much was read)"
        )
    assert int(peak_mb) < 120, "RSS bound: the body was read"


@pytest.mark.parametrize(
    ("page", "needle"),
    [
        ("latin1-header", "café crème ÿ"),
        ("cp1251-meta", "привет"),
        ("utf8-undeclared", "café crème ÿ"),
        ("broken-undeclared", "status: ok"),
        ("utf16le-bom-undeclared", "café crème ÿ"),
        ("utf16be-bom-says-utf8", "café crème ÿ"),
        ("utf8-bom-says-latin1", "café crème ÿ"),
        ("cp1252-says-latin1", "café crème ÿ €"),
        ("xml-declaration", "café crème ÿ"),
    ],
)
def test_bodies_are_decoded_as_declared_and_never_fail_to_decode(
    hostile: HostileHttp, page: str, needle: str
) -> None:
    assert check(url=hostile.url(f"/page/{page}"), body_contains=needle).status == Status.OK
    missing = check(url=hostile.url(f"/page/{page}"), body_contains="absent")
    assert (missing.status, missing.message) == (Status.FAILED, "body does not contain 'absent'")


def test_json_in_a_declared_charset(hostile: HostileHttp) -> None:
    result = check(url=hostile.url("/page/latin1-json"), json_path="$.state", equals="café")
    assert result.status == Status.OK


def test_json_with_a_byte_order_mark_is_read(hostile: HostileHttp) -> None:
    result = check(url=hostile.url("/page/utf16-bom-json"), json_path="$.state", equals="café")
    assert result.status == Status.OK, result.message


def test_max_body_is_a_setting(hostile: HostileHttp) -> None:
    result = check(url=hostile.url("/page/utf8-undeclared"), body_contains="ÿ", max_body="8B")
    assert result.status == Status.FAILED and "larger than max_body 8 bytes" in result.message


def test_a_status_class_means_the_same_in_either_case_and_only_ascii_digits_count(
    target: Target,
) -> None:
    assert parse_status_spec("2XX") == parse_status_spec("2xx") == parse_status_spec("2Xx")
    assert check(url=target.url("/ok"), expect_status=["2XX"]).status == Status.OK
    assert check(url=target.url("/ok"), expect_status=["4XX"]).status == Status.FAILED
    fullwidth = "\uff12\uff10\uff10"  # 200 in fullwidth digits
    for bad in ("٢٠٠", fullwidth, f"2{fullwidth[1:]}-299", "²xx", "200-٢٩٩"):
        with pytest.raises(ValueError, match="in ASCII digits"):
            HttpSettings(url="http://x/", expect_status=[bad])
    with pytest.raises(ValueError, match="expected at least one status"):
        HttpSettings(url="http://x/", expect_status=[])
