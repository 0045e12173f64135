"""E-mail addresses: one rule for non-ASCII, each recipient once, errors that can be acted
on (an address from ``${ENV}`` is quoted: it is no secret unless a secret setting uses it)."""

from __future__ import annotations

import email
import email.header
from email.policy import default
from pathlib import Path

from tests.conftest import run_cli
from tests.support.receivers import SmtpReceiver


def test_an_address_from_env_is_quoted_in_its_error_unless_a_secret_setting_uses_it(
    tmp_path: Path,
) -> None:
    config = tmp_path / "mail.yaml"
    config.write_text(
        "services: []\nchannels:\n"
        "  a: {type: email, host: 127.0.0.1, from: '${MAIL_FROM}', to: ['${MAIL_TO}']}\n"
        "  b: {type: email, host: 127.0.0.1, from: '${MAIL_LOGIN}', username: '${MAIL_LOGIN}',"
        " to: [ops@example.org]}\n"
    )
    env = {"MAIL_FROM": "lb@exämple.org", "MAIL_TO": "ops@ex ample.org",
           "MAIL_LOGIN": "login@@example.org"}  # fmt: skip
    done = run_cli("-m", "server.cli", "config", "check", "--config", str(config), env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    expected_from = (
        "mail.yaml:3 channels.a.from: an e-mail address must be ASCII: write its domain in "
        'IDNA form, "lb@xn--exmple-cua.org", got "lb@exämple.org"'
    )
    expected_to = (
        'channels.a.to[0]: expected an e-mail address like "ops@example.org" or '
        '"Ops <ops@example.org>", got "ops@ex ample.org" (from ${MAIL_TO})'
    )
    assert expected_from + " (from ${MAIL_FROM})" in lines[0], lines
    assert lines[1].endswith(expected_to), lines
    # the same value is the SMTP login too: it stays masked everywhere, errors included;
    # the variable it came from is named (scfg), never its value
    assert lines[2].endswith('got "<secret>" (from ${MAIL_LOGIN})') and "login@@" not in done.stderr


def test_each_recipient_gets_one_copy_and_a_non_ascii_display_name_is_encoded(
    tmp_path: Path,
) -> None:
    smtp = SmtpReceiver()
    config = tmp_path / "mail.yaml"
    config.write_text(
        f"services: []\nchannels:\n  mail: {{type: email, host: 127.0.0.1, port: {smtp.port}, "
        "security: none, from: 'Lightbulb <lb@example.org>', "
        "to: ['Équipe Ops <ops@example.org>', oncall@example.org]}\n"
    )
    try:
        done = run_cli("-m", "server.cli", "notify", "test", "mail", "--config", str(config))
        assert done.returncode == 0, done.stdout + done.stderr
        assert smtp.handler.rcpt_attempts == ["ops@example.org", "oncall@example.org"]
        (envelope,) = smtp.messages
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        headers = raw.partition(b"\r\n\r\n")[0]
        assert headers.isascii()  # no raw UTF-8 header: the display name is RFC 2047-encoded
        message = email.message_from_bytes(raw, policy=default)
        assert str(message["To"]) == "Équipe Ops <ops@example.org>, oncall@example.org"
    finally:
        smtp.close()
    duplicate = tmp_path / "dup.yaml"
    duplicate.write_text(
        config.read_text().replace("oncall@example.org", "'Ops <OPS@Example.org>'")
    )
    done = run_cli("-m", "server.cli", "config", "check", "--config", str(duplicate))
    assert done.returncode == 2
    assert 'to[1] repeats the address of to[0] ("ops@example.org"); list each recipient once' in (
        done.stderr
    )
