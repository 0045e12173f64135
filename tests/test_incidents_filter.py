"""/incidents's service filter: built in Python, the same bytes Jinja wrote (autoescaped)."""

from __future__ import annotations

import pytest
from jinja2 import Environment

from server.web.incidents_view import service_options

LOOP = (
    "{% for s in services %}<option {{ 'selected' if s == service }}>{{ s }}</option>{% endfor %}"
)
ODD = "b<&'\">"


@pytest.mark.parametrize(
    ("services", "selected"),
    [(["a", ODD, "svc-1", ""], "svc-1"), (["x", "y"], ""), (["x&y", "q", ODD], ODD), ([], "z")],
)
def test_the_options_are_what_the_template_loop_wrote(services: list[str], selected: str) -> None:
    template = Environment(autoescape=True).from_string(LOOP)
    want = template.render(services=services, service=selected)
    assert str(service_options(services, selected)) == want
    assert want.count(" selected>") == services.count(selected)
