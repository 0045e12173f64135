"""Secrets never leave: a unique secret in every configurable field, searched for everywhere.

The daemon runs for real on a config whose every secret-worthy value comes from
``${ENV}`` (URL userinfo, path segments and query values, headers, bodies, tokens,
passwords, labels, annotations, comments), with checks that fail and print their
URL, a webhook that fails and one that receives notices, and an SMTP server that
receives mail. Then every output is searched for every secret: all rows in chDB,
every page and API answer, the daemon's log, ``lightbulb check``, ``lightbulb
notify test`` and ``lightbulb config check`` output, and every notice received.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from server.core.redact import MASK, Redactor
from server.storage.embedded import EmbeddedStorage
from tests.conftest import free_port, run_cli, wait_until
from tests.support.daemon import DaemonProcess
from tests.support.receivers import HttpReceiver, SmtpReceiver

FIELDS = [
    "HTTP_USER", "HTTP_PASS", "HTTP_SEG", "HTTP_TOKEN", "HTTP_HEADER", "HTTP_BODY", "CMD_ARG",
    "SVC_LABEL", "HOOK_SEG", "HOOK_TOKEN", "HOOK_AUTH", "HOOK_SIGN", "BAD_SEG", "BAD_SIG",
    "MAIL_USER", "MAIL_PASS", "ANN_SUMMARY", "LABEL_TEAM", "DASH_TOKEN", "LOGS_TOKEN",
    "CH_PASS", "SIL_COMMENT", "TCP_SEND", "SLACK_PATH",
]  # fmt: skip


def test_redact_masks_learned_values_url_credentials_and_secret_query_values() -> None:
    redactor = Redactor()
    redactor.learn(["hunter22", "hunter22-long", "abc"])  # "abc" is too short to search for
    text = (
        "GET https://bob:pw@api.example/v1?token=t0k&page=2&API_KEY=k3y - hunter22-long, "
        "hunter22, abc"
    )
    assert redactor.text(text) == (
        f"GET https://{MASK}@api.example/v1?token={MASK}&page=2&API_KEY={MASK} - {MASK}, "
        f"{MASK}, abc"
    )


def test_redact_walks_rows_and_results_without_changing_them() -> None:
    @dataclass(frozen=True)
    class Result:
        message: str
        details: dict[str, object]

    redactor = Redactor()
    redactor.learn(["s3cr3t-value"])
    result = Result("failed: s3cr3t-value", {"url": "x?sig=1", "n": 3})
    row = ("svc", 2, ["s3cr3t-value"], {"s3cr3t-value": "k"})
    assert redactor.value(result) == Result(f"failed: {MASK}", {"url": f"x?sig={MASK}", "n": 3})
    assert redactor.value(row) == ("svc", 2, [MASK], {MASK: "k"})
    assert result.message == "failed: s3cr3t-value"  # the input is left as it was


@pytest.fixture
def secrets() -> dict[str, str]:
    """A unique value per field, named after it (so a leak says which field leaked)."""
    return {name: f"lb{name.lower().replace('_', '')}{uuid.uuid4().hex[:10]}" for name in FIELDS}


@pytest.fixture
def receivers(secrets: dict[str, str]) -> Iterator[tuple[HttpReceiver, HttpReceiver, SmtpReceiver]]:
    ok, bad = HttpReceiver(), HttpReceiver(status=500)
    smtp = SmtpReceiver(users={secrets["MAIL_USER"]: secrets["MAIL_PASS"]})
    yield ok, bad, smtp
    for receiver in (ok, bad, smtp):
        receiver.close()


def config_text(
    tmp_path: Path, ok: HttpReceiver, bad: HttpReceiver, smtp: SmtpReceiver, port: int
) -> str:
    closed = free_port()
    return f"""
clickhouse: {{embedded_path: {tmp_path / "db"}, password: "${{CH_PASS}}"}}
scheduler: {{spool_dir: {tmp_path / "spool"}, flush_interval: 200ms, insert_interval: 200ms}}
dashboard:
  port: {port}
  auth: {{type: bearer, tokens: {{ops: "${{DASH_TOKEN}}"}}}}
logs: {{tokens: {{pusher: "${{LOGS_TOKEN}}"}}}}
alerting: {{group_wait: 0s, retries: 0}}
services:
  - id: web
    label: "${{SVC_LABEL}}"
    type: http
    interval: 1s
    timeout: 1s
    http:
      url: "http://${{HTTP_USER}}:${{HTTP_PASS}}@127.0.0.1:{closed}/p/${{HTTP_SEG}}?token=${{HTTP_TOKEN}}"
      method: POST
      headers: {{X-Api-Key: "${{HTTP_HEADER}}"}}
      body: "${{HTTP_BODY}}"
  - id: cmd
    type: command
    interval: 1s
    command: {{command: [/bin/sh, -c, 'echo "CRITICAL - $0"; exit 2', "${{CMD_ARG}}"]}}
  - id: port
    type: tcp
    interval: 1s
    tcp: {{host: 127.0.0.1, port: {closed}, send: "${{TCP_SEND}}"}}
alert_rules:
  - id: down
    service: "*"
    condition: "status >= FAILED"
    labels: {{team: "${{LABEL_TEAM}}"}}
    annotations: {{summary: "{{{{ service.id }}}} down: ${{ANN_SUMMARY}}"}}
    channels: [ok, bad, mail]
channels:
  ok:
    type: webhook
    url: "{ok.url}/hook/${{HOOK_SEG}}?token=${{HOOK_TOKEN}}"
    headers: {{Authorization: "${{HOOK_AUTH}}"}}
    secret: "${{HOOK_SIGN}}"
  bad: {{type: webhook, url: "{bad.url}/x/${{BAD_SEG}}?sig=${{BAD_SIG}}"}}
  mail:
    type: email
    host: 127.0.0.1
    port: {smtp.port}
    security: none
    username: "${{MAIL_USER}}"
    password: "${{MAIL_PASS}}"
    from: lightbulb@example.com
    to: [ops@example.com]
  chat: {{type: slack, url: "http://127.0.0.1:{closed}/services/${{SLACK_PATH}}"}}
silences:
  - {{rule: nothing, start: 2026-01-01T00:00:00Z, end: 2026-01-02T00:00:00Z,
     comment: "${{SIL_COMMENT}}"}}
"""


def test_no_secret_reaches_rows_pages_api_logs_cli_or_notices(
    tmp_path: Path,
    secrets: dict[str, str],
    receivers: tuple[HttpReceiver, HttpReceiver, SmtpReceiver],
) -> None:
    ok, bad, smtp = receivers
    port = free_port()
    config = tmp_path / "lightbulb.yaml"
    config.write_text(config_text(tmp_path, ok, bad, smtp, port))
    outputs: dict[str, str] = {}

    daemon = DaemonProcess(config, tmp_path, env=secrets)
    try:
        daemon.wait_for("storage ready")
        ok.wait_for(3, seconds=30)  # one notice per failing service
        assert wait_until(lambda: len(smtp.messages) >= 3, 30)
        assert wait_until(lambda: bad.attempts >= 3, 30)
        assert wait_until(lambda: "channel bad: notice" in daemon.output, 30)
        base = f"http://127.0.0.1:{port}"
        for path in ["/", "/services/web", "/services/cmd", "/alerts", "/status", "/errors",
                     "/dependencies", "/api/v1/services", "/api/v1/services/web",
                     "/api/v1/alerts", "/api/v1/silences", "/api/v1/errors", "/metrics",
                     "/api/v1/services/web/logs"]:  # fmt: skip
            answer = requests.get(base + path, timeout=30)
            assert answer.status_code == 200, (path, answer.text[:300])
            outputs[f"page {path}"] = answer.text
    finally:
        code, _ = daemon.stop()
    assert code == 0, daemon.output[-3000:]
    outputs["daemon log"] = daemon.output
    # (the request line and headers are the channel's own URL and auth: only bodies count)
    outputs["webhook notices"] = "\n".join(r.body.decode() for r in ok.requests)
    outputs["e-mail notices"] = "\n".join(m.content.decode(errors="replace") for m in smtp.messages)

    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        tables = [r["name"] for r in store.query("SELECT name FROM system.tables "
                                                 "WHERE database = 'monitor'")]  # fmt: skip
        for table in tables:
            outputs[f"table {table}"] = repr(store.query(f"SELECT * FROM monitor.{table}"))
    finally:
        store.close()
    assert "<secret>" in outputs["table service_status"]  # the check messages were masked

    for service in ("web", "cmd", "port"):
        done = run_cli("-m", "server.cli", "check", service, "--config", str(config), env=secrets)
        outputs[f"check {service}"] = done.stdout + done.stderr
    for channel in ("bad", "chat"):
        done = run_cli("-m", "server.cli", "notify", "test", channel, "--config", str(config),
                       env=secrets)  # fmt: skip
        assert done.returncode == 1
        outputs[f"notify test {channel}"] = done.stdout + done.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        config.read_text().replace('url: "http://${HTTP_USER}', 'url: "ftp://${HTTP_USER}')
    )
    done = run_cli("-m", "server.cli", "config", "check", "--config", str(broken), env=secrets)
    assert done.returncode == 2 and "expected an http:// or https:// URL" in done.stderr
    outputs["config check"] = done.stderr

    leaks = [
        f"{name} in {where}"
        for name, value in secrets.items()
        for where, text in outputs.items()
        if value in text
    ]
    assert not leaks, "\n".join(leaks)
