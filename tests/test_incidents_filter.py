"""/incidents's service filter: built in Python, the same bytes the pages' Jinja wrote."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from jinja2 import Environment

from server.web.app import _finalize
from server.web.incidents_view import service_options
from tests.support.incident_site import TOKEN, Site

RULELESS = ""  # no rules: the site's own services and alerting settings

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


def test_the_incidents_page_offers_every_configured_service_and_keeps_the_chosen_one(
    tmp_path: Path,
) -> None:
    """The page itself, served by the app: one option per configured service, the one
    asked for selected (a page without its options fails here, not only the builder)."""
    site = Site(tmp_path, RULELESS, step=timedelta(seconds=10), shown=["web"])
    try:
        page = site.client().get("/incidents?service=web", headers=TOKEN)
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        ids = sorted(s.id for s in site.config().services)
        assert len(ids) >= 2
        for sid in ids:
            assert (f"<option selected>{sid}</option>" if sid == "web"
                    else f"<option >{sid}</option>") in html  # fmt: skip
    finally:
        site.close()
