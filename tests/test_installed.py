"""Smoke test of an installed wheel, as a user runs it: outside the checkout, no sources.

``.ci/installed-smoke`` builds the wheel, installs it into a fresh venv and runs
this file with ``LIGHTBULB_INSTALLED_VENV`` pointing at that venv. The test drives
the installed ``lightbulb`` command from a temporary directory: bootstrap,
validate-schema, the daemon on a small config (every dashboard page and API route
answers 200, one e-mail notice reaches a loopback SMTP server), then
``lightbulb report``. Without the variable (``make test``) it is skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, free_port, wait_until
from tests.support.receivers import SmtpReceiver

VENV = os.environ.get("LIGHTBULB_INSTALLED_VENV", "")
pytestmark = pytest.mark.skipif(
    not VENV, reason="needs an installed wheel: run .ci/installed-smoke"
)
PAGES = ["/", "/services/closed-port", "/alerts", "/errors", "/reports", "/dependencies",
         "/status", "/login", "/static/lightbulb.css", "/static/lightbulb.js", "/healthz",
         "/readyz", "/metrics"]  # fmt: skip


def installed(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The venv's own ``lightbulb``, with nothing from the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(Path(VENV) / "bin" / "lightbulb"), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    yield receiver
    receiver.close()


def write_config(directory: Path, port: int, smtp_port: int) -> Path:
    path = directory / "lightbulb.yaml"
    path.write_text(f"""
clickhouse: {{embedded_path: data/db}}
scheduler: {{spool_dir: data/spool}}
dashboard: {{port: {port}}}
alerting: {{group_wait: 0s}}
services:
  - {{id: closed-port, type: tcp, interval: 1s, timeout: 1s,
     tcp: {{host: 127.0.0.1, port: {free_port()}}}}}
  - {{id: dashboard, type: http, interval: 1s, timeout: 1s,
     http: {{url: "http://127.0.0.1:{port}/healthz"}}}}
alert_rules:
  - {{id: down, service: closed-port, condition: "status >= FAILED", channels: [mail]}}
channels:
  mail: {{type: email, host: 127.0.0.1, port: {smtp_port}, security: none,
          from: lightbulb@example.com, to: [ops@example.com]}}
""")
    return path


def test_the_installed_package_is_the_one_under_test(tmp_path: Path) -> None:
    where = subprocess.run(
        [str(Path(VENV) / "bin" / "python"), "-c", "import server; print(server.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(where).resolve().is_relative_to(Path(VENV).resolve())
    assert not Path(where).resolve().is_relative_to(REPO)
    site = Path(where).parents[1]
    assert not (site / "templates").exists() and not (site / "sql").exists()


def test_installed_wheel_bootstraps_runs_serves_every_page_mails_and_reports(
    tmp_path: Path, smtp: SmtpReceiver
) -> None:
    port = free_port()
    config = str(write_config(tmp_path, port, smtp.port))
    done = installed("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("lightbulb "), done.stderr
    done = installed("bootstrap", "--config", config, cwd=tmp_path)
    assert done.returncode == 0 and "Schema ready." in done.stdout, done.stderr
    done = installed("validate-schema", "--config", config, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    daemon = subprocess.Popen(
        [str(Path(VENV) / "bin" / "lightbulb"), "run", "--config", config],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                return requests.get(f"{base}/readyz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        assert wait_until(ready, 60), "the installed daemon never became ready"
        assert wait_until(lambda: len(smtp.messages) >= 1, 60), "no e-mail notice arrived"
        mail = smtp.messages[0].content
        assert b"closed-port" in mail and b"<html" in mail.lower()

        document = requests.get(f"{base}/api/v1/openapi.json", timeout=10).json()
        routes = [p.replace("{service_id}", "closed-port") for p, item in
                  document["paths"].items() if "get" in item and "{" not in
                  p.replace("{service_id}", "")]  # fmt: skip
        for path in PAGES + routes:
            answer = requests.get(base + path, timeout=30)
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    finally:
        daemon.send_signal(signal.SIGTERM)
        output = daemon.communicate(timeout=30)[0]
    assert daemon.returncode == 0, output[-3000:]

    today = datetime.now(UTC).date().isoformat()
    done = installed("report", "--config", config, "--date", today, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "closed-port" in done.stdout
