"""/incidents's service filter: built in Python, the same bytes the pages' Jinja wrote."""

from __future__ import annotations

import pytest
from jinja2 import Environment

from server.web.app import _finalize
from server.web.incidents_view import service_options

LOOP = (
    "{% for s in services %}<option {{ 'selected' if s == service }}>{{ s }}</option>{% endfor %}"
)
ODD = "b<&'\"\u0007>"


@pytest.mark.parametrize(
    ("services", "selected"),
    [(["a", ODD, "svc-1", ""], "svc-1"), (["x", "y"], ""), (["x&y", "q", ODD], ODD), ([], "z")],
)
def test_the_options_are_what_the_template_loop_wrote(services: list[str], selected: str) -> None:
    # the pages' environment: autoescaped, with their finalize
    template = Environment(autoescape=True, finalize=_finalize).from_string(LOOP)
    want = template.render(services=services, service=selected)
    assert str(service_options(services, selected)) == want
    assert want.count(" selected>") == services.count(selected)
