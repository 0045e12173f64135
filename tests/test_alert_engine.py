"""Rule state machines: each condition, for, repeat, resolve, flapping, inhibition, silences."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from checkers.base import Status
from server.notify.base import Notice
from tests.alerting_harness import Harness

DOWN = """
alert_rules:
  - {id: down, service: "*", condition: "status >= FAILED", channels: [hook], severity: critical}
"""


def test_status_rule_notifies_once_on_firing_and_once_on_resolve() -> None:
    h = Harness(DOWN)
    h.result("db", Status.OK)
    h.result("db", Status.FAILED, advance=10)
    h.result("db", Status.FAILED, advance=10)
    h.tick(1)
    h.result("db", Status.OK, advance=10)
    h.result("db", Status.OK, advance=10)
    assert h.told() == [("alert", "db", "firing"), ("alert", "db", "resolved")]
    assert h.transitions() == [
        ("db", "inactive", "firing", "queued"),
        ("db", "firing", "resolved", "queued"),
    ]


def test_status_names_and_codes_compare() -> None:
    h = Harness("""
alert_rules:
  - {id: stopped, service: db, condition: "status == STOPPED", channels: [hook]}
  - {id: not-ok, service: db, condition: "status != 0", channels: [hook]}
""")
    h.result("db", Status.DEGRADED)
    assert h.state("stopped:db") == "inactive"
    assert h.state("not-ok:db") == "firing"
    h.result("db", Status.STOPPED, advance=10)
    assert h.state("stopped:db") == "firing"


def test_for_keeps_the_alert_pending_until_it_has_held_long_enough() -> None:
    h = Harness("""
alert_rules:
  - {id: down, service: db, condition: "status >= FAILED", for: 30s, channels: [hook]}
""")
    h.result("db", Status.FAILED)
    assert h.state("down:db") == "pending"
    h.result("db", Status.FAILED, advance=10)
    h.result("db", Status.FAILED, advance=10)
    assert h.state("down:db") == "pending"
    assert h.told() == []
    h.tick(10)  # 30 s have passed: the timer fires it without waiting for a result
    assert h.state("down:db") == "firing"
    assert h.told() == [("alert", "db", "firing")]


def test_a_condition_that_clears_while_pending_notifies_nobody() -> None:
    h = Harness("""
alert_rules:
  - {id: down, service: db, condition: "status >= FAILED", for: 1m, channels: [hook]}
""")
    h.result("db", Status.FAILED)
    h.result("db", Status.OK, advance=10)
    assert h.transitions() == [("db", "inactive", "pending", ""), ("db", "pending", "inactive", "")]
    assert h.told() == []


def test_metric_rule_compares_the_newest_sample_with_the_threshold() -> None:
    h = Harness("""
alert_rules:
  - {id: slow, service: api, condition: "metric response_time_ms > threshold", threshold: 500,
     channels: [hook]}
""")
    h.result("api", Status.OK, response_ms=200)
    assert h.state("slow:api") == "inactive"
    h.result("api", Status.OK, advance=10, response_ms=900)
    assert h.state("slow:api") == "firing"
    assert h.engine.alert("slow:api").value == 900  # type: ignore[union-attr]
    h.result("api", Status.OK, advance=10)  # no sample this time: not judged as slow
    assert h.state("slow:api") == "resolved"


def test_avg_metric_rule_averages_over_its_for_window() -> None:
    h = Harness("""
alert_rules:
  - {id: queue, service: api, condition: "avg metric queue_depth > threshold", threshold: 100,
     for: 30s, channels: [hook]}
""")
    h.result("api", Status.OK, metrics={"queue_depth": 250})
    assert h.state("queue:api") == "inactive"  # one sample is not a 30 s average yet
    h.result("api", Status.OK, advance=30, metrics={"queue_depth": 250})
    assert h.state("queue:api") == "firing"  # windowed: fires as soon as the average crosses
    h.result("api", Status.OK, advance=10, metrics={"queue_depth": 10})
    h.result("api", Status.OK, advance=10, metrics={"queue_depth": 10})
    assert h.engine.alert("queue:api").value == 90  # type: ignore[union-attr]
    assert h.state("queue:api") == "resolved"
    h.result("api", Status.OK, advance=10, metrics={"queue_depth": 400})
    assert h.state("queue:api") == "firing"  # (10 + 10 + 400) / 3 = 140 > 100
    h.result("api", Status.OK, advance=30, metrics={"queue_depth": 50})
    assert h.engine.alert("queue:api").value == 225  # the 10s fell out of the window


def test_absent_fires_after_threshold_missed_intervals_and_resolves_on_a_result() -> None:
    h = Harness("""
alert_rules:
  - {id: silent, service: db, condition: absent, threshold: 3, channels: [hook]}
""")
    h.result("db", Status.OK)
    h.tick(25)
    assert h.state("silent:db") == "inactive"
    h.tick(5)
    assert h.state("silent:db") == "firing"
    assert h.engine.alert("silent:db").value == 3  # type: ignore[union-attr]
    h.result("db", Status.OK, advance=1)
    assert h.state("silent:db") == "resolved"
    assert h.told() == [("alert", "db", "firing"), ("alert", "db", "resolved")]


def test_consecutive_failures_counts_failed_results_in_a_row() -> None:
    h = Harness("""
alert_rules:
  - {id: flaky, service: db, condition: "consecutive_failures >= threshold", threshold: 3,
     channels: [hook]}
""")
    for status in (Status.FAILED, Status.FAILED, Status.OK, Status.FAILED, Status.FAILED):
        h.result("db", status, advance=10)
    assert h.state("flaky:db") == "inactive"
    h.result("db", Status.FAILED, advance=10)
    assert h.state("flaky:db") == "firing"


def test_log_errors_counts_error_rows_within_the_window() -> None:
    h = Harness("""
alert_rules:
  - {id: errors, service: api, condition: "log_errors > threshold", threshold: 4, for: 1m,
     channels: [hook]}
""")
    h.result("api", Status.OK, errors=3)
    h.result("api", Status.OK, advance=10, errors=1)
    assert h.state("errors:api") == "inactive"
    h.result("api", Status.OK, advance=10, errors=1)
    assert h.state("errors:api") == "firing"
    h.result("api", Status.OK, advance=55)  # the first 3 errors are older than 1m now
    assert h.state("errors:api") == "resolved"


def test_repeat_interval_renotifies_while_firing_and_not_more_often() -> None:
    h = Harness("""
alert_rules:
  - {id: down, service: db, condition: "status >= FAILED", repeat_interval: 1h,
     channels: [hook]}
""")
    h.result("db", Status.FAILED)
    for _ in range(5):
        h.result("db", Status.FAILED, advance=600)
    assert [k for k, _, _ in h.told()] == ["alert"]
    h.tick(600)  # 1 h since the firing notice
    h.tick(1)
    assert [k for k, _, _ in h.told()] == ["alert", "repeat"]
    assert len(h.events("repeat")) == 1


def test_flapping_service_gets_one_notice_and_its_news_held_until_it_settles() -> None:
    h = Harness(
        DOWN
        + """
alerting:
  group_wait: 0s
  flapping: {window: 6, high: 0.5, low: 0.2}
"""
    )
    for status in [Status.OK, Status.FAILED] * 4:
        h.result("db", status, advance=10)
    assert h.kinds().count("flapping") == 1
    assert "is flapping" in next(r.json["title"] for r in h.sent() if r.json["kind"] == "flapping")
    sent_before = len(h.told())
    assert h.engine.alert("down:db").hold.reason == "flapping"  # type: ignore[union-attr]
    for _ in range(6):
        h.result("db", Status.FAILED, advance=10)
    # settled while failing: the held firing goes out once, no further flapping notice
    assert h.told()[sent_before:] == [("alert", "db", "firing")]
    assert h.kinds().count("flapping") == 1
    assert len(h.events("flapping_end")) == 1


def test_downstream_alerts_are_inhibited_through_a_two_level_dependency_chain() -> None:
    h = Harness(DOWN)
    h.result("db", Status.FAILED)
    h.result("api", Status.FAILED, advance=1)
    h.result("web", Status.FAILED, advance=1)
    assert h.told() == [("alert", "db", "firing")]
    web = h.engine.alert("down:web")
    assert web is not None
    assert (web.state.value, web.hold.reason, web.hold.cause) == ("firing", "inhibited", "db")
    assert ("web", "inactive", "firing", "inhibited") in h.transitions()
    assert h.events("transition")[-1]["caused_by"] == "db"
    # db recovers, web is still down: now web's own alert is news
    h.result("db", Status.OK, advance=10)
    h.result("api", Status.OK, advance=1)
    h.tick(1)
    assert h.told()[-2:] == [("alert", "db", "resolved"), ("alert", "web", "firing")]


def test_a_downstream_notice_is_recalled_when_its_upstream_fires_before_it_is_sent() -> None:
    h = Harness(DOWN, group_wait="1s")
    h.result("api", Status.FAILED)  # api reports first; db's check is a moment later
    h.result("db", Status.FAILED, advance=0.2)
    assert h.told() == []  # both wait out group_wait
    h.tick(1)
    # at send time db is firing: api's notice is held back, db's goes out
    assert h.told() == [("alert", "db", "firing")]
    assert h.events("recalled")[0]["delivery_result"] == "inhibited"
    assert h.events("recalled")[0]["service_id"] == "api"
    # db recovers, api does not: api's own alert is news now, sent once
    h.result("db", Status.OK, advance=10)
    h.tick(1)
    h.tick(1)
    assert h.told() == [
        ("alert", "db", "firing"),
        ("alert", "db", "resolved"),
        ("alert", "api", "firing"),
    ]


def test_a_config_silence_records_alerts_without_sending_them() -> None:
    h = Harness(
        DOWN
        + """
silences:
  - {service: "stack:default", rule: down, start: "2026-11-22T11:00:00Z",
     end: "2026-11-22T13:00:00Z", comment: db upgrade}
"""
    )
    h.result("db", Status.FAILED)
    assert h.told() == []
    assert h.transitions() == [("db", "inactive", "firing", "silenced")]
    h.result("db", Status.OK, advance=600)
    h.tick(3600)  # the silence ends after the alert resolved: nothing to tell
    assert h.told() == []


def test_when_a_silence_ends_an_alert_still_firing_is_sent() -> None:
    h = Harness(
        DOWN
        + """
silences:
  - {service: db, end: "2026-11-22T12:05:00Z"}
"""
    )
    h.result("db", Status.FAILED)
    h.tick(200)
    assert h.told() == []
    h.tick(100)
    assert h.told() == [("alert", "db", "firing")]
    assert h.events("notify")[0]["delivery_result"] == "queued"


def test_a_recurring_maintenance_window_opens_at_its_cron_times() -> None:
    h = Harness(
        DOWN
        + """
silences:
  - {rule: down, cron: "0 12 * * *", duration: 30m, timezone: UTC}
"""
    )
    h.result("db", Status.FAILED)  # 12:00, inside the window
    assert h.transitions()[-1][3] == "silenced"
    h.tick(31 * 60)  # 12:31, window closed: the still-firing alert goes out
    assert h.told() == [("alert", "db", "firing")]
    h.result("db", Status.OK, advance=1)
    h.clock.advance(timedelta(days=1).total_seconds() - 31 * 60 - 1)
    h.result("db", Status.FAILED)  # 12:00 next day: silenced again
    assert h.transitions()[-1][3] == "silenced"


def test_annotations_are_templates_over_the_result() -> None:
    h = Harness("""
alert_rules:
  - id: slow
    service: api
    condition: "metric response_time_ms > 100"
    channels: [hook]
    annotations:
      summary: "{{ service.label }} answers in {{ value | int }} ms (limit {{ rule.threshold }})"
      description: "status {{ status }}: {{ message }}"
""")
    h.result("api", Status.DEGRADED, response_ms=750, message="<b>slow</b>")
    item = h.sent()[0].json["alerts"][0]
    assert item["summary"] == "api answers in 750 ms (limit 0.0)"
    assert item["description"] == "status DEGRADED: <b>slow</b>"


def test_rules_without_channels_record_transitions_as_none() -> None:
    h = Harness("""
alert_rules:
  - {id: down, service: db, condition: "status >= FAILED"}
""")
    h.result("db", Status.FAILED)
    assert h.transitions() == [("db", "inactive", "firing", "none")]
    assert h.sent() == []


def test_a_reload_keeps_the_state_of_rules_that_stay_and_drops_removed_ones() -> None:
    h = Harness(
        DOWN
        + """
  - {id: slow, service: db, condition: "metric response_time_ms > 100", channels: [hook]}
"""
    )
    h.result("db", Status.FAILED, response_ms=500)
    assert h.told() == [("alert", "db", "firing")] * 2
    h.engine.configure(Harness(DOWN).config)
    assert h.state("down:db") == "firing"
    assert h.engine.alert("slow:db") is None
    h.result("db", Status.FAILED, advance=10)
    assert len(h.told()) == 2  # still firing: nothing new to tell after the reload


def test_an_acknowledged_alert_is_not_repeated_until_it_resolves_and_fires_again() -> None:
    h = Harness("""
alert_rules:
  - {id: down, service: db, condition: "status >= FAILED", repeat_interval: 1h,
     channels: [hook]}
""")
    h.result("db", Status.FAILED)
    assert h.engine.acknowledge("down:db", "ana") is not None
    h.tick(7200)
    assert [k for k, _, _ in h.told()] == ["alert"]
    assert h.events("ack")[0]["caused_by"] == "ana"
    h.result("db", Status.OK, advance=1)
    h.result("db", Status.FAILED, advance=1)
    h.tick(3601)
    assert [k for k, _, _ in h.told()] == ["alert", "alert", "alert", "repeat"]


def _errors(h: Harness, service: str, messages: list[str], advance: float = 0) -> None:
    from checkers.base import CheckResult, LogEntry

    at = h.clock.advance(advance)
    logs = [LogEntry("ERROR", m) for m in messages]
    h.engine.observe(service, CheckResult(Status.OK, "ok", logs=logs), at)


def test_new_error_pattern_fires_for_a_pattern_never_seen_before() -> None:
    h = Harness("""
alert_rules:
  - {id: novel, service: api, condition: new_error_pattern, for: 10m, channels: [hook]}
""")
    _errors(h, "db", ["timeout after 5 ms"])  # known fleet-wide from now on
    _errors(h, "api", ["timeout after 9 ms"], advance=900)  # same pattern, 15 min later
    assert h.state("novel:api") == "inactive"
    _errors(h, "api", ["disk /var/x full"], advance=10)
    assert h.state("novel:api") == "firing"
    h.tick(601)  # the new pattern is older than the 10 min window now
    assert h.state("novel:api") == "resolved"


def test_a_new_error_pattern_notice_names_the_new_patterns_masked_in_its_message() -> None:
    from server.core import redact
    from server.logs.patterns import pattern_of

    h = Harness("""
alert_rules:
  - {id: novel, service: api, condition: new_error_pattern, for: 10m, channels: [hook],
     annotations: {summary: "{{ message }}"}}
""")
    held = redact.hold()
    redact.learn(["PatternSecret77"])
    held.keep()
    try:
        pushed = pattern_of("ERROR", "queue 17 stuck")  # a pushed log, then a checker's
        h.engine.note_logs([("api", h.clock.advance(1), "ERROR", pushed[1], pushed[0])])
        _errors(h, "api", ["disk /var/x full; key PatternSecret77"])
        assert h.state("novel:api") == "firing"
        h.deliver()
        (notice,) = [r.json for r in h.sent()]
        (alert,) = notice["alerts"]
    finally:
        held.release()
    assert alert["message"].startswith("new error pattern")
    assert "disk <path> full; key <secret>" in alert["message"], alert
    assert "queue <num> stuck" in alert["message"], alert
    assert "PatternSecret77" not in json.dumps(notice)
    assert alert["annotations"]["summary"] == alert["message"]


def test_error_pattern_rate_counts_the_most_frequent_pattern_per_minute() -> None:
    h = Harness("""
alert_rules:
  - {id: storm, service: api, condition: "error_pattern_rate > threshold", threshold: 2,
     for: 1m, channels: [hook]}
""")
    _errors(h, "api", [f"retry {i} failed" for i in range(2)] + ["other"])
    assert h.state("storm:api") == "inactive"
    _errors(h, "api", ["retry 9 failed"], advance=10)
    assert h.state("storm:api") == "firing"
    assert h.engine.alert("storm:api").value == 3  # type: ignore[union-attr]


def test_pushed_error_logs_drive_log_conditions_on_the_next_tick() -> None:
    from server.logs.patterns import pattern_of

    h = Harness("""
alert_rules:
  - {id: errors, service: api, condition: "log_errors > threshold", threshold: 1, for: 1m,
     channels: [hook]}
""")
    at = h.clock.now()
    fp = pattern_of("ERROR", "boom")[1]
    h.engine.note_logs([("api", at, "ERROR", fp), ("api", at, "ERROR", fp), ("api", at, "INFO", 0)])
    h.tick(1)
    assert h.state("errors:api") == "firing"


def test_a_firing_and_resolve_within_one_group_wait_send_nothing_but_stay_in_history() -> None:
    h = Harness(DOWN, group_wait="5s")
    h.result("db", Status.FAILED)
    h.result("db", Status.OK, advance=2.5)  # failed for about 2.5 s
    h.tick(5)
    h.tick(60)
    assert h.told() == []
    assert h.transitions() == [
        ("db", "inactive", "firing", "queued"),
        ("db", "firing", "resolved", "queued"),
    ]
    (dropped,) = h.events("delivery")
    assert (dropped["to_state"], dropped["delivery_result"]) == ("resolved", "dropped")


def test_an_absent_alert_firing_and_resolving_11_ms_apart_after_a_pause_sends_nothing() -> None:
    h = Harness(
        """
alert_rules:
  - {id: gone, service: db, condition: absent, threshold: 3, channels: [hook]}
""",
        group_wait="500ms",
    )  # fmt: skip  (the default group_wait)
    h.result("db", Status.OK)
    h.tick(60)  # the daemon was paused: no results for 6 intervals
    assert h.state("gone:db") == "firing"
    h.result("db", Status.OK, advance=0.011)  # the check that was due arrives 11 ms later
    h.tick(1)  # past group_wait
    h.result("db", Status.OK, advance=5)
    h.tick(1)
    assert h.told() == []
    assert [t[2] for t in h.transitions()] == ["firing", "resolved"]


def test_an_incident_ending_as_the_next_begins_within_group_wait_keeps_both() -> None:
    h = Harness(DOWN, group_wait="1s")
    h.result("db", Status.FAILED)
    h.tick(1)
    assert h.told() == [("alert", "db", "firing")]
    h.result("db", Status.OK, advance=10)  # resolved...
    h.result("db", Status.FAILED, advance=0.2)  # ...and failing again, within group_wait
    h.tick(1)
    assert h.told() == [
        ("alert", "db", "firing"),
        ("alert", "db", "resolved"),
        ("alert", "db", "firing"),
    ]
    (_, both) = (r.json for r in h.sent())  # one message: the resolve, then the new firing
    assert [a["status"] for a in both["alerts"]] == ["resolved", "firing"]
    assert both["alerts"][0]["started_at"] != both["alerts"][1]["started_at"]


def test_a_resolve_says_what_recovered_and_how_long_it_lasted() -> None:
    h = Harness("""
alert_rules:
  - id: down
    name: Service down
    service: db
    condition: "status >= FAILED"
    channels: [hook]
    annotations: {summary: "{{ service.label }} is {{ status }}: {{ message }}"}
""")
    h.result("db", Status.FAILED, message="connection refused")
    h.result("db", Status.OK, advance=151, message="accepting connections")
    firing, resolved = (r.json for r in h.sent())
    assert firing["title"] == "[FIRING] db is FAILED: connection refused"
    assert resolved["title"] == "[RESOLVED] db recovered after 2m 31s (Service down)"
    assert resolved["alerts"][0]["started_at"] == firing["alerts"][0]["since"]
    api = h.engine.alerts()[0]
    assert api["since_text"] == "2026-11-22 12:02:31 UTC"


def test_a_value_reads_rounded_for_people_and_exact_for_machines() -> None:
    h = Harness("""
alert_rules:
  - {id: slow, service: api, condition: "avg metric latency > 2", for: 1m, channels: [hook]}
""")
    for value in (2, 3, 2.3, 2.4, 2.5, 2.6, 2.2):
        h.result("api", Status.OK, advance=10, metrics={"latency": value})
    api = next(a for a in h.engine.alerts() if a["id"] == "slow:api")
    assert api["value"] == pytest.approx(2.4285714285714284)
    assert api["value_text"] == "2.43"
    assert h.sent()[0].json["alerts"][0]["value"] == pytest.approx(2.4285714285714284)


def test_a_reload_keeps_a_notice_that_is_retrying_and_sends_it_once() -> None:
    h = Harness(DOWN)
    h.receiver.failing = True
    try:
        h.result("db", Status.FAILED)
        assert h.told() == []
        h.dispatcher.configure(h.config)  # SIGHUP with the same channels
        h.engine.configure(h.config)
    finally:
        h.receiver.failing = False
    h.tick(30)
    h.tick(30)
    assert h.told() == [("alert", "db", "firing")]


def test_a_firing_still_in_group_wait_is_pending_so_no_repeat_queues_behind_it() -> None:
    """repeat_interval (3 s) shorter than group_wait (8 s), the receiver down: while
    the firing waits out group_wait no repeat is queued, so none bursts out after it."""
    h = Harness("""
alert_rules:
  - {id: down, service: db, condition: "status >= FAILED", repeat_interval: 3s,
     channels: [hook]}
""", group_wait="8s")  # fmt: skip
    h.receiver.failing = True
    try:
        h.result("db", Status.FAILED)
        for _ in range(7):  # inside group_wait: the firing is in no outbox yet
            h.tick(1)
            assert h.events("repeat") == [] and h.engine.alerts()[0]["delivery"] == []
        for _ in range(6):  # the firing is queued, then retrying
            h.tick(1)
        assert h.told() == [] and h.events("repeat") == []
    finally:
        h.receiver.failing = False
    for _ in range(60):
        h.tick(0.5)
        if h.told():
            break
    h.tick(0)
    assert h.kinds() == ["alert"]  # the firing alone: nothing queued behind it


def test_news_taken_from_its_group_is_pending_until_the_ledger_has_it() -> None:
    """Between leaving group_wait and reaching the ledger (the engine's recheck, the
    outbox write) the news is still pending: no moment when a repeat could slip in."""
    h = Harness("""
alert_rules:
  - {id: down, service: db, condition: "status >= FAILED", channels: [hook]}
""", group_wait="5s")  # fmt: skip
    h.result("db", Status.FAILED)
    alert = h.engine.alert("down:db")
    assert alert is not None and h.dispatcher.holds_back("hook", alert.id, alert.incident)
    recheck, seen = h.dispatcher.recheck, []
    assert recheck is not None

    def watching(notice: Notice) -> Notice | None:
        seen.append(h.dispatcher.holds_back("hook", alert.id, alert.incident))
        return recheck(notice)

    h.dispatcher.recheck = watching
    h.tick(5)
    assert seen == [True] and h.told() == [("alert", "db", "firing")]
    assert not h.dispatcher.holds_back("hook", alert.id, alert.incident)  # the ledger has it


def test_repeats_wait_for_an_undelivered_notice_and_do_not_burst_after_an_outage() -> None:
    h = Harness("""
alert_rules:
  - {id: down, service: db, condition: "status >= FAILED", repeat_interval: 3s,
     channels: [hook]}
""")
    h.receiver.failing = True
    try:
        h.result("db", Status.FAILED)
        for _ in range(11):  # an 11 s outage: the firing is retrying all along
            h.tick(1)
        assert h.told() == []
        assert h.events("repeat") == []  # the retrying firing already says it is firing
        (delivery,) = h.engine.alerts()[0]["delivery"]
        assert (delivery["kind"], delivery["state"]) == ("alert", "retrying")
        assert delivery["attempts"] >= 1 and delivery["error"]
    finally:
        h.receiver.failing = False
    for _ in range(60):  # the receiver is back: the firing goes out at its next retry
        h.tick(0.5)
        if h.told():
            break
    assert h.kinds() == ["alert"]  # exactly one firing, no burst of queued repeats
    h.tick(1)
    h.tick(1)
    assert h.kinds() == ["alert"]  # the repeat clock restarted at the delivery
    h.tick(1.5)
    h.tick(0)
    assert h.kinds() == ["alert", "repeat"]
    assert len(h.events("repeat")) == 1


def test_inhibition_is_logged_even_for_a_rule_with_no_channel() -> None:
    # the attack: with no channel configured the dependant's firing was logged as
    # "no channel to tell", never as inhibited, so /incidents showed two incidents
    h = Harness(DOWN.replace(", channels: [hook]", ""))
    h.result("db", Status.FAILED)
    h.result("api", Status.FAILED, advance=1)
    assert h.told() == []
    assert ("db", "inactive", "firing", "none") in h.transitions()
    assert ("api", "inactive", "firing", "inhibited") in h.transitions()
    assert h.events("transition")[-1]["caused_by"] == "db"
    h.result("db", Status.OK, advance=10)
    h.result("api", Status.OK, advance=1)
    assert h.transitions()[-2:] == [
        ("db", "firing", "resolved", "none"),
        ("api", "firing", "resolved", "none"),
    ]
    assert h.events("transition")[-1]["caused_by"] == ""
