"""``lightbulb notify test CHANNEL``: sends once and reports success or the exact error."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import free_port, run_cli
from tests.support.receivers import HttpReceiver


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "lightbulb.yaml"
    path.write_text(
        f"""
channels:
  ops-hook: {{type: webhook, url: "{url}", secret: "${{HOOK_SECRET}}"}}
"""
    )
    return path


def test_notify_test_sends_a_test_notice(tmp_path: Path, receiver: HttpReceiver) -> None:
    config = write_config(tmp_path, f"{receiver.url}/hook")
    done = run_cli(
        "-m", "server.cli", "notify", "test", "ops-hook", "--config", str(config),
        env={"HOOK_SECRET": "hush-123"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ops-hook: sent (webhook)"
    body = receiver.wait_for(1)[0].json
    assert body["kind"] == "test"
    assert "X-Lightbulb-Signature" in receiver.requests[0].headers
    assert "hush-123" not in done.stdout + done.stderr


def test_notify_test_reports_the_exact_delivery_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    config = write_config(tmp_path, url)
    done = run_cli(
        "-m", "server.cli", "notify", "test", "ops-hook", "--config", str(config),
        env={"HOOK_SECRET": "x"},
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith(f"ops-hook: FAILED: cannot reach {url}")
    assert "Traceback" not in done.stderr


def test_notify_test_names_the_known_channels_for_a_typo(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9/")
    done = run_cli(
        "-m", "server.cli", "notify", "test", "ops-hoook", "--config", str(config),
        env={"HOOK_SECRET": "x"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "known: ops-hook" in done.stderr
