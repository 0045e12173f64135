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

import base64
import html
import json
import re
import shlex
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

import flask
import markupsafe
import pytest
import requests
from jinja2.utils import htmlsafe_json_dumps

from server.core.redact import MASK, Redactor, redact
from server.notify.base import ChannelError
from server.notify.http import post_json
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from tests.conftest import free_port, run_cli, wait_until
from tests.support.daemon import DaemonProcess, insert_what_the_spool_kept
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


SERVICES = {"web", "cmd", "port"}
ALL_TOLD = {f"down:{sid}": {"ok": "delivered", "mail": "delivered", "bad": "failed"}
            for sid in SERVICES}  # fmt: skip


def told(base: str) -> dict[str, dict[str, str]]:
    """Alert id -> channel -> the state of its latest notice there (``/api/v1/alerts``)."""
    try:
        alerts = requests.get(f"{base}/api/v1/alerts", timeout=10).json()["alerts"]
    except (requests.RequestException, ValueError):
        return {}  # not answering yet
    return {a["id"]: {d["channel"]: d["state"] for d in a["delivery"]} for a in alerts}


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
    base = f"http://127.0.0.1:{port}"
    try:
        daemon.wait_for("storage ready")
        # Every failing service's firing settled on every channel, as the daemon says:
        # not a count of arrivals, since firings that meet while a channel is busy (an
        # SMTP session in flight) go as one notice, and under load they often do.
        assert wait_until(lambda: told(base) == ALL_TOLD, 60), told(base)
        assert wait_until(lambda: "channel bad: notice" in daemon.output, 30)  # via a pipe
        assert {a["service_id"] for r in ok.requests for a in r.json["alerts"]} == SERVICES
        assert len(smtp.messages) >= 1 and bad.attempts >= 1
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
        insert_what_the_spool_kept(store, tmp_path / "spool")  # every row the daemon wrote
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


# Secrets holding the characters that repr, JSON, HTML, URLs and shells escape: a message
# quoting one escaped ('a\\b', "q\"", 'é\u2028', %2F) must still be masked.
# Each holds plain-word markers (``mkbs1``) that survive any escaping: a marker found in an
# output is a leak, whatever spelling it leaked in.
ESCAPED = {
    "ESC_BACKSLASH": "mkbs1\\mkbs2\\mkbs3",
    "ESC_QUOTES": "mkq1\"mkq2'mkq3",
    "ESC_CONTROL": "mkc1\tmkc2\r\nX: mkc3\x01",
    "ESC_UNICODE": "mku1émku2\u2028€mku3\x7f",
    "ESC_URLISH": "mkl1/%&<> mkl2+=?#mkl3",
}
MARKERS = re.compile(r"mk(?:bs|q|c|u|l)\d")


@pytest.mark.parametrize(
    "form",
    [
        repr,
        json.dumps,
        lambda s: json.dumps(s, ensure_ascii=False),
        lambda s: json.dumps(repr(s)),
        lambda s: repr(json.dumps(s)),
        lambda s: quote(s, safe=""),
        lambda s: re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(s)),
        quote_plus,
        html.escape,
        lambda s: str(markupsafe.escape(s)),
        lambda s: str(markupsafe.escape(repr(s))),
        flask.json.dumps,
        lambda s: str(htmlsafe_json_dumps(s)),
        shlex.quote,
        lambda s: s.encode("unicode_escape").decode(),
    ],
    ids=[
        "repr",
        "json",
        "json-utf8",
        "json-of-repr",
        "repr-of-json",
        "url-quoted",
        "url-quoted-lower-hex",
        "form-encoded",
        "html",
        "markupsafe",
        "html-of-repr",
        "flask-json",
        "jinja-tojson",
        "shell",
        "unicode-escape",
    ],
)
def test_redact_masks_a_secret_in_every_escaped_spelling(form: Callable[[str], str]) -> None:
    redactor = Redactor()
    redactor.learn(ESCAPED.values())
    for name, secret in ESCAPED.items():
        shown = redactor.text(f"expected {form(secret)} here")
        assert not MARKERS.search(shown) and MASK in shown, (name, shown)


def test_redact_masks_the_basic_auth_header_of_a_url_with_userinfo(tmp_path: Path) -> None:
    """requests sends a URL's userinfo as ``Authorization: Basic base64(user:pass)``; a
    receiver echoing it back into an error (stored, shown) must not reveal it."""

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = f"denied: {self.headers['Authorization']}".encode()
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        user, password = f"lbuser{uuid.uuid4().hex[:6]}", f"lbpass{uuid.uuid4().hex[:6]}"
        url = f"http://${{HOOK_USER}}:${{HOOK_PASS}}@127.0.0.1:{server.server_port}/hook"
        parse_config(  # loading the config is what teaches the redactor its secrets
            f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\nservices: []\n"
            f'channels: {{hook: {{type: webhook, url: "{url}"}}}}\n',
            "basic.yaml",
            {"HOOK_USER": user, "HOOK_PASS": password},
        )
        with pytest.raises(ChannelError) as failure:
            post_json(
                f"http://{user}:{password}@127.0.0.1:{server.server_port}/hook", b"{}", (5, 5)
            )
    finally:
        server.shutdown()
        server.server_close()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    message = str(failure.value)
    # the receiver did echo it: masked already where its answer is cut for the message
    assert f"denied: Basic {MASK}" in message
    assert token not in redact(message) and MASK in redact(message)


def escaped_config(tmp_path: Path, receiver: HttpReceiver, port: int) -> str:
    services = "".join(
        f"""
  - id: {name.lower().replace("_", "-")}
    type: http
    interval: 1s
    http:
      url: "{receiver.url}/health"
      method: POST
      json_path: $.status
      equals: "${{{name}}}"
"""
        for name in ESCAPED
    )
    return f"""
clickhouse: {{embedded_path: {tmp_path / "db"}}}
scheduler: {{spool_dir: {tmp_path / "spool"}, flush_interval: 200ms}}
dashboard: {{port: {port}}}
alerting: {{group_wait: 0s}}
services:{services}
alert_rules:
  - {{id: down, service: "*", condition: "status >= FAILED"}}
"""


def test_secrets_escaped_in_messages_are_masked_in_rows_pages_api_cli_and_config_errors(
    tmp_path: Path,
) -> None:
    receiver = HttpReceiver()
    port = free_port()
    config = tmp_path / "lightbulb.yaml"
    config.write_text(escaped_config(tmp_path, receiver, port))
    ids = [name.lower().replace("_", "-") for name in ESCAPED]
    outputs: dict[str, str] = {}
    daemon = DaemonProcess(config, tmp_path, env=ESCAPED)
    try:
        daemon.wait_for("storage ready")
        for service in ids:
            daemon.wait_for_checks(service, 1)
        base = f"http://127.0.0.1:{port}"
        assert wait_until(
            lambda: (
                len(requests.get(base + "/api/v1/alerts", timeout=30).json()["alerts"]) >= len(ids)
            ),
            30,
        )
        pages = [f"/services/{s}" for s in ids] + [f"/api/v1/services/{s}" for s in ids]
        for path in ["/", "/alerts", "/api/v1/services", "/api/v1/alerts", *pages]:
            answer = requests.get(base + path, timeout=30)
            assert answer.status_code == 200, (path, answer.text[:300])
            outputs[f"page {path}"] = answer.text
    finally:
        code, _ = daemon.stop()
        receiver.close()
    assert code == 0, daemon.output[-3000:]
    outputs["daemon log"] = daemon.output
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        rows = store.query("SELECT message FROM monitor.service_status")
        outputs["service_status"] = repr(rows) + json.dumps(rows)
        outputs["alert_events"] = repr(store.query("SELECT * FROM monitor.alert_events"))
    finally:
        store.close()
    assert "expected '<secret>'" in outputs["service_status"]  # the mismatch was stored, masked
    for service in ids:
        done = run_cli("-m", "server.cli", "check", service, "--config", str(config), env=ESCAPED)
        outputs[f"check {service}"] = done.stdout + done.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        config.read_text().replace(
            "services:",
            "services:"
            + "".join(
                f"\n  - {{id: bad{i}, type: tcp, interval: '${{{name}}}', "
                f"tcp: {{host: '${{{name}}}', port: '${{{name}}}'}}}}"
                for i, name in enumerate(ESCAPED)
            ),
        )
    )
    done = run_cli("-m", "server.cli", "config", "check", "--config", str(broken), env=ESCAPED)
    assert done.returncode == 2 and done.stderr.count("<secret>") >= 3 * len(ESCAPED), done.stderr
    outputs["config check"] = done.stderr

    leaks = [
        f"{where}: …{text[max(0, found.start() - 40) : found.end() + 40]!r}…"
        for where, text in outputs.items()
        for found in MARKERS.finditer(text)
    ]
    assert not leaks, "\n".join(leaks)
