"""Credentials written in a URL's userinfo are secrets: learned at config load, masked
wherever a message quoting them goes (rows, API, pages, notices, ``lightbulb check``)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from server.core import redact
from server.core.redact import MASK
from server.storage.embedded import EmbeddedStorage
from server.validation import parse_config
from tests.conftest import free_port, run_cli, wait_until
from tests.support.daemon import DaemonProcess
from tests.support.hostile import HOSTILE_USERINFO
from tests.support.http_target import Target
from tests.support.receivers import HttpReceiver


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    server = Target()
    yield server
    server.close()


def config_text(tmp_path: Path, target: Target, hook: str = "", port: int = 0) -> str:
    base = target.url("/credentials").removeprefix("http://")
    services = "".join(
        f'\n  - {{id: u-{user}, type: http, interval: 1s, http: {{url: "http://{user}:'
        f'{written}@{base}", json_path: "$.password", equals: nope}}}}'
        for user, written, _ in HOSTILE_USERINFO
    )
    alerting = (
        f"alerting: {{group_wait: 0s}}\nchannels: {{hook: {{type: webhook, url: '{hook}'}}}}\n"
        "alert_rules:\n  - {id: down, service: 'u-*', condition: status >= FAILED, "
        "channels: [hook], annotations: {summary: '{{ message }}'}}\n"
        if hook
        else ""
    )
    return (
        f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\n"
        f"scheduler: {{spool_dir: {tmp_path / 'spool'}, flush_interval: 200ms}}\n"
        f"dashboard: {{port: {port or free_port()}}}\n{alerting}services:{services}\n"
    )


def spellings(user: str, written: str, decoded: str) -> list[str]:
    pair = f"{user}:{decoded}"
    token = base64.b64encode(pair.encode()).decode()
    return [decoded, written, pair, f"{user}:{written}", token, repr(decoded), json.dumps(pair)]


@pytest.mark.parametrize(("user", "written", "decoded"), HOSTILE_USERINFO)
def test_a_url_password_of_any_length_is_masked_in_every_spelling_once_loaded(
    tmp_path: Path, target: Target, user: str, written: str, decoded: str
) -> None:
    parse_config(config_text(tmp_path, target), "urls.yaml")
    for spelling in spellings(user, written, decoded):
        shown = redact.redact(f"$.v is {spelling}, expected 'nope'")
        assert re.fullmatch(r"\$\.v is ['\"]?<secret>['\"]?, expected 'nope'", shown), shown
    if len(decoded) < 8:  # a short password is masked as a whole word only
        assert redact.redact(f"{decoded}x nope") == f"{decoded}x nope"


def test_a_token_alone_in_the_userinfo_and_a_url_inside_a_command_are_learned(
    tmp_path: Path,
) -> None:
    parse_config(
        f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\nservices:\n"
        "  - {id: c, type: command, command: {command: [git, clone, "
        "'https://ghp_t0ken1@example.com/r', 'ftp://ann:Ap9@h/x', 'ssh://git@h/r',"
        " 'http://bo:@h/']}}\n",
        "cmd.yaml",
    )
    shown = redact.redact("auth failed for ghp_t0ken1; ann:Ap9 refused; Ap9 wrong")
    assert shown == f"auth failed for {MASK}; {MASK} refused; {MASK} wrong"
    # a short user with no password names a user (git), and bo: has no password at all
    assert redact.redact("git as bo: denied") == "git as bo: denied"


def test_the_base64_of_a_secret_is_masked_as_the_secret_is(tmp_path: Path) -> None:
    parse_config(
        f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\nservices: []\n"
        "channels: {hook: {type: webhook, url: 'http://127.0.0.1:1/', secret: '${S}'}}\n",
        "b64.yaml",
        {"S": "HookSecretValue123"},
    )
    token = base64.b64encode(b"HookSecretValue123").decode()
    assert redact.redact(f"sent {token} and {token.rstrip('=')}") == f"sent {MASK} and {MASK}"


def test_lightbulb_check_masks_a_url_password_the_target_echoes(
    tmp_path: Path, target: Target
) -> None:
    config = tmp_path / "lightbulb.yaml"
    config.write_text(config_text(tmp_path, target))
    for user, _, decoded in HOSTILE_USERINFO[:3]:
        done = run_cli("-m", "server.cli", "check", f"u-{user}", "--config", str(config))
        assert re.search(r"password is '?<secret>'?, expected 'nope'", done.stdout), done.stdout
        assert decoded not in done.stdout + done.stderr


def test_a_url_password_echoed_by_a_target_never_reaches_rows_api_pages_or_notices(
    tmp_path: Path, target: Target
) -> None:
    hook = HttpReceiver()
    port = free_port()
    config = tmp_path / "lightbulb.yaml"
    config.write_text(config_text(tmp_path, target, hook.url + "/hook", port))
    ids = [f"u-{user}" for user, _, _ in HOSTILE_USERINFO]
    outputs: dict[str, str] = {}
    daemon = DaemonProcess(config, tmp_path)
    try:
        daemon.wait_for("storage ready")
        # a firing for every service (several may share one notice when they fire together)
        bodies = lambda: [r.body.decode() for r in hook.requests]  # noqa: E731
        assert wait_until(lambda: all(any(i in b for b in bodies()) for i in ids), 60), bodies()
        base = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: all(daemon.checks(s) >= 2 for s in ids), 60)
        for path in ["/", "/api/v1/services", "/api/v1/alerts", *[f"/services/{s}" for s in ids]]:
            answer = requests.get(base + path, timeout=30)
            assert answer.status_code == 200, path
            outputs[path] = answer.text
    finally:
        code, _ = daemon.stop()
        hook.close()
    assert code == 0, daemon.output[-3000:]
    outputs["notices"] = "\n".join(r.body.decode() for r in hook.requests)
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        messages = store.query("SELECT message FROM monitor.service_status")
        outputs["service_status"] = json.dumps(messages, ensure_ascii=False)
        outputs["alert_events"] = repr(store.query("SELECT * FROM monitor.alert_events"))
    finally:
        store.close()
    shown = r"password is '?<secret>'?, expected 'nope'"
    assert len(re.findall(shown, outputs["service_status"])) >= 2 * len(ids)
    assert len(re.findall(shown, outputs["notices"])) >= len(ids)
    # every quoted value, in any escaping (JSON, HTML, repr), is the mask
    quoted = [
        (where, found.group(1))
        for where, text in outputs.items()
        for found in re.finditer(r"password is (.{0,40}?), expected", text)
    ]
    assert len(quoted) >= 4 * len(ids)
    leaks = [(where, value) for where, value in quoted if "secret" not in value]
    assert not leaks, leaks
