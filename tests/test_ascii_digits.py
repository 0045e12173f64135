"""Numbers in protocols and records are ASCII digits: ``str.isdigit`` also takes
superscripts (``²``) that ``int``/``float`` refuse, and other scripts' digits (U+0661)
that they read. Each parser of outside text refuses both the same clear way."""

from __future__ import annotations

import pytest
import requests

from checkers.logtail import parse_json_record
from server.core import status
from server.core.times import parse_instant
from server.notify.http import retry_after

ODD = ["²", "١٢", "12²", "³⁰", "\u0663\u0660"]


def response(retry: str) -> requests.Response:
    answer = requests.Response()
    answer.status_code = 503
    answer.headers["Retry-After"] = retry
    return answer


@pytest.mark.parametrize("odd", ODD)
def test_a_retry_after_of_non_ascii_digits_is_unreadable_not_a_crash(odd: str) -> None:
    assert retry_after(response(odd)) is None
    assert retry_after(response("30")) == 30.0


@pytest.mark.parametrize("odd", ODD)
def test_a_status_of_non_ascii_digits_is_refused_with_the_names(odd: str) -> None:
    with pytest.raises(ValueError, match="expected a status"):
        status.parse(odd)
    assert status.parse("2") == status.Status.FAILED


@pytest.mark.parametrize("odd", ODD)
def test_an_instant_of_non_ascii_digits_is_refused_with_the_syntax(odd: str) -> None:
    with pytest.raises(ValueError, match=r"^t: "):
        parse_instant(odd, "t")


@pytest.mark.parametrize("odd", ODD)
def test_a_json_log_level_of_non_ascii_digits_falls_back_to_the_text(odd: str) -> None:
    entry = parse_json_record({"level": odd, "msg": "disk full ERROR"}, "{}", "app")
    assert (entry.level, entry.message) == ("ERROR", "disk full ERROR")
    assert parse_json_record({"level": "50", "msg": "m"}, "{}", "app").level == "ERROR"
