"""``server.config_changes``: what a reload changed, per configured list, by id."""

from __future__ import annotations

from server.config import Config
from server.config.models import DashboardConfig, StatusPageConfig
from server.config_changes import compare, describe

BEFORE = Config.model_validate({
    "services": [{"id": "a", "type": "host"}, {"id": "b", "type": "host"}],
    "relations": [{"source": "a", "target": "b"}],
    "alert_rules": [{"id": "keep", "service": "a", "condition": "status >= FAILED"},
                    {"id": "off", "service": "a", "condition": "status >= FAILED"},
                    {"id": "on", "service": "a", "condition": "status >= FAILED", "enabled": False},
                    {"id": "edit", "service": "a", "condition": "status >= FAILED"}],
    "silences": [{"service": "a", "cron": "0 2 * * *", "duration": "1h"}],
})  # fmt: skip


def test_each_list_reports_added_removed_changed_disabled_and_enabled_ids() -> None:
    after = BEFORE.model_copy(update={
        "alert_rules": [BEFORE.alert_rules[0],
                        BEFORE.alert_rules[1].model_copy(update={"enabled": False}),
                        BEFORE.alert_rules[2].model_copy(update={"enabled": True}),
                        BEFORE.alert_rules[3].model_copy(update={"severity": "critical"}),
                        BEFORE.alert_rules[0].model_copy(update={"id": "new"})],
        "relations": [], "silences": [],
    })  # fmt: skip
    assert describe(BEFORE, after) == (
        "alert rules: added ['new'], changed ['edit'], disabled ['off'], enabled ['on']; "
        "relations: removed ['a->b:depends_on']; silences: removed ['config-0']; "
        "channels: unchanged; status page groups: unchanged; alerting: unchanged"
    )
    assert describe(BEFORE, BEFORE) == (
        "alert rules: unchanged; relations: unchanged; silences: unchanged; channels: unchanged; "
        "status page groups: unchanged; alerting: unchanged"
    )
    assert compare({"x": 1}, {"x": 1, "y": 2})["added"] == ["y"]


def test_alerting_settings_and_status_page_groups_are_named_when_changed() -> None:
    """A reload that changes what is declared flapping from now on, or what the status
    page groups, says so: by setting name and group name, never by value."""
    before = Config.model_validate(BEFORE.model_dump() | {
        "status_page": {"groups": [{"name": "Front", "services": ["a"]},
                                   {"name": "Back", "services": ["b"]}]},
    })  # fmt: skip
    after = Config.model_validate(before.model_dump() | {
        "alerting": {"group_wait": "2s", "flapping": {"window": 10, "high": 0.4}},
        "status_page": {"groups": [{"name": "Front", "services": ["a", "b"]},
                                   {"name": "Edge", "services": ["a"]}]},
    })  # fmt: skip
    said = describe(before, after)
    assert said.endswith(
        "status page groups: added ['Edge'], removed ['Back'], changed ['Front']; "
        "alerting: changed ['group_wait', 'flapping.window', 'flapping.high']"
    )
    assert "0.4" not in said and "2s" not in said


def test_every_settings_section_names_its_changed_settings_never_their_values() -> None:
    """A new dashboard token (who may write notes, acks, silences) or a new status page
    title is said by name; the token itself never (atk14e: neither was said)."""
    after = BEFORE.model_copy(update={
        "dashboard": DashboardConfig.model_validate(
            {"auth": {"type": "bearer", "tokens": {"ops": "s3cr3t-t0k3n"}}}),
        "status_page": StatusPageConfig.model_validate({"title": "Acme status"}),
    })  # fmt: skip
    said = describe(BEFORE, after)
    assert said.endswith(
        "alerting: unchanged; dashboard: changed ['auth.type', 'auth.tokens']; "
        "status_page: changed ['title']"
    )
    assert "s3cr3t" not in said and "Acme" not in said
