"""Status page groups: members picked by selectors once per configuration, always current."""

from __future__ import annotations

from markupsafe import escape

from server.config.models import Config
from server.validation import parse_config
from server.web.charts import badge, pct
from server.web.queries import ServiceView
from server.web.status_view import Group, groups, overall, select


def config(groups_yaml: str) -> Config:
    services = "\n".join(
        f"  - {{id: {sid}, type: tcp, stack: {stack}, tcp: {{host: 127.0.0.1, port: 9}}}}"
        for sid, stack in (("web-1", "front"), ("web-2", "front"), ("db", "back"),
                           ("queue", "back"), ("batch", "jobs"))
    )  # fmt: skip
    return parse_config(f"services:\n{services}\nstatus_page:\n  groups:\n{groups_yaml}",
                        "status.yaml", {})  # fmt: skip


GROUPS = """    - {name: Website, services: ['web-*']}
    - {name: Data, services: ['stack:back', batch]}
    - {name: Everything, services: ['*']}
"""


def views(cfg: Config, codes: dict[str, int]) -> list[ServiceView]:
    out = [ServiceView(s.id, s.id, s.type, s.stack) for s in cfg.services]
    for view in out:
        if view.id in codes:
            view.checked, view.status_code = True, codes[view.id]
    return [*out, ServiceView("lightbulb", "Lightbulb daemon", "lightbulb", "lightbulb")]


def test_each_group_holds_what_its_selectors_pick_in_service_order() -> None:
    cfg = config(GROUPS)
    shown = [v for v in views(cfg, {}) if v.id != "lightbulb"]
    found = groups(cfg, views(cfg, {}))
    assert [g.name for g in found] == ["Website", "Data", "Everything"]
    for g, want in zip(found, cfg.status_page.groups, strict=True):
        assert [v.id for v in g.members] == [v.id for v in select(want.services, shown)]
    assert [v.id for v in found[1].members] == ["db", "queue", "batch"]


def test_members_are_the_requests_own_views_with_their_current_status() -> None:
    cfg = config(GROUPS)
    groups(cfg, views(cfg, {}))  # a first request
    found = groups(cfg, views(cfg, {"db": 2, "web-1": 0, "queue": 0}))
    data = found[1]
    assert [(v.id, v.checked, v.status_code) for v in data.members][:1] == [("db", True, 2)]
    assert data.code == 2 and data.up == 1 and found[0].up == 1
    headline = overall(found)  # db is in Data and Everything: still one service
    assert (headline.members, headline.checked, headline.down) == (5, 3, 1)


def test_the_headline_counts_a_service_in_several_groups_once() -> None:
    """Website, Data and Everything hold 10 places for 5 services; two of them down."""
    cfg = config(GROUPS)
    found = groups(cfg, views(cfg, {"db": 2, "web-1": 2, "web-2": 0, "queue": 0, "batch": 0}))
    assert sum(len(g.members) for g in found) == 10
    headline = overall(found)
    assert (headline.members, headline.checked, headline.down) == (5, 5, 2)


def test_a_reloaded_configuration_regroups() -> None:
    first = config(GROUPS)
    assert [v.id for v in groups(first, views(first, {}))[0].members] == ["web-1", "web-2"]
    second = config(GROUPS.replace("'web-*'", "'web-2', db"))
    assert [v.id for v in groups(second, views(second, {}))[0].members] == ["web-2", "db"]
    assert [v.id for v in groups(first, views(first, {}))[0].members] == ["web-1", "web-2"]


def test_member_rows_are_escaped_and_follow_each_requests_status_and_label() -> None:
    """Row starts and pills are kept between requests: what a row shows must still be
    the request's own label, status and uptime, escaped, as if built afresh."""

    def fresh(group: Group) -> str:
        return "".join(
            f'<tr data-service="{escape(v.id)}"><td>{escape(v.label)}</td>'
            f"<td>{badge.__wrapped__(v.status_code if v.checked else None)}</td>"
            f"<td>{pct(group.uptime.get(v.id))}</td></tr>"
            for v in group.members
        )

    hostile = ServiceView('a"><script>x</script>', "<b>Shop & co</b>", "http", "web")
    plain = ServiceView("db", "Database", "tcp", "back")
    for label, code, checked, share in (("<b>Shop & co</b>", 0, True, 99.5),
                                        ("Shop 'renamed'", 2, True, None),
                                        ("Shop 'renamed'", 2, False, 12.25)):  # fmt: skip
        hostile.label, hostile.status_code, hostile.checked = label, code, checked
        group = Group("G", [hostile, plain], uptime={hostile.id: share})
        rows = group.rows()
        assert rows == fresh(group)
        assert "<script>" not in rows and "<b>" not in rows
