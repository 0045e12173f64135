"""Reload and start-up edges of the real daemon: hostile files, dashboard moves, taken ports.

A reload never takes the daemon down and never leaves an old socket open without
the auth that guarded it; a taken dashboard port stops ``lightbulb run`` at once.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from server.storage.embedded import EmbeddedStorage
from tests.conftest import free_port, wait_until
from tests.support.daemon import DaemonProcess

BAD = Path(__file__).parent / "fixtures" / "config" / "bad"
HOSTILE = [
    (BAD / "40_alias_bomb.yaml").read_text(),
    (BAD / "41_recursive_alias.yaml").read_text(),
    (BAD / "43_huge_numbers.yaml").read_text(),
    (BAD / "44_merge_of_a_list.yaml").read_text(),
    (BAD / "46_nested_too_deep.yaml").read_text(),
    (BAD / "47_unsupported_tag.yaml").read_text(),
    (BAD / "73_numbers_too_long_for_a_float.yaml").read_text(),
    "- just\n- a list\n",
    "services: [{id: a, type: host, interval: 0.0000001s}]\n",
    "\x00\xff garbage",
    "",  # emptied, or cut short before its first key
    "  \n \n",
    "# only comments\n# left\n",
]


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    yield
    for daemon in DaemonProcess.started:
        if daemon.proc.poll() is None:
            daemon.kill()
    DaemonProcess.started.clear()


def config_text(tmp_path: Path, dashboard: str, services: str = "") -> str:
    return (
        f"clickhouse: {{embedded_path: {tmp_path / 'db'}}}\n"
        f"scheduler: {{spool_dir: {tmp_path / 'spool'}, flush_interval: 200ms,"
        " insert_interval: 200ms}\n"
        f"dashboard: {dashboard}\n"
        "services:\n  - {id: one, type: host, interval: 1s}\n" + services
    )


def get(url: str, token: str = "") -> requests.Response:
    """GET ``url``; raises ``requests.ConnectionError`` if nobody listens."""
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)


def rejections(daemon: DaemonProcess) -> int:
    return daemon.output.count("reload rejected")


def test_a_taken_dashboard_port_stops_run_at_once_naming_port_and_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "lightbulb.yaml"
        config.write_text(config_text(tmp_path, f"{{port: {port}}}"))
        daemon = DaemonProcess(config, tmp_path)
        assert daemon.proc.wait(60) == 1
    daemon._reader.join(5)
    assert f"dashboard.port: 127.0.0.1:{port} is already in use" in daemon.output
    assert "set dashboard.port to a free port" in daemon.output
    assert "storage ready" not in daemon.output and "starting:" not in daemon.output


def test_every_hostile_file_on_reload_is_rejected_and_the_daemon_keeps_checking(
    tmp_path: Path,
) -> None:
    config = tmp_path / "lightbulb.yaml"
    good = config_text(tmp_path, f"{{port: {free_port()}}}")
    config.write_text(good)
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("storage ready")
    for count, text in enumerate(HOSTILE, start=1):
        config.write_bytes(text.encode("utf-8", "surrogateescape"))
        daemon.signal(signal.SIGHUP)
        assert wait_until(lambda n=count: rejections(daemon) >= n, 30), daemon.output[-3000:]
        assert daemon.proc.poll() is None, daemon.output[-3000:]
    config.write_text(good + "  - {id: two, type: host, interval: 1s}\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(r"reloaded .*added \['two'\]")
    assert rejections(daemon) == len(HOSTILE)
    assert "Traceback" not in daemon.output
    # the daemon runs on: a rejected reload does not say "nothing was started"
    assert "nothing was started" not in daemon.output
    assert daemon.output.count("reload rejected, keeping the running config") == len(HOSTILE)
    assert "problem found; the running config stays, unchanged." in daemon.output
    code, _ = daemon.stop()
    assert code == 0, daemon.output[-3000:]
    store = EmbeddedStorage(tmp_path / "db", "monitor")
    try:
        rows = store.query("SELECT service_id FROM monitor.services FINAL WHERE enabled")
    finally:
        store.close()
    assert {r["service_id"] for r in rows} == {"one", "two"}


AUTHED = (
    "{bind: 0.0.0.0, port: %d, auth: {type: bearer, public_reads: false, tokens: {ops: s3cret}}}"
)


def test_moving_the_dashboard_to_loopback_without_auth_closes_the_open_socket(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "lightbulb.yaml"
    config.write_text(config_text(tmp_path, AUTHED % port))
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("storage ready")
    elsewhere = f"http://127.0.0.2:{port}/api/v1/services"  # what 0.0.0.0 also answers on
    assert get(elsewhere).status_code == 401 and get(elsewhere, "s3cret").status_code == 200
    config.write_text(config_text(tmp_path, f"{{bind: 127.0.0.1, port: {port}}}"))
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("reloaded")
    with pytest.raises(requests.ConnectionError):
        get(elsewhere)  # nothing listens beyond loopback any more
    assert get(f"http://127.0.0.1:{port}/api/v1/services").status_code == 200
    code, _ = daemon.stop()
    assert code == 0


def test_a_file_emptied_or_cut_short_on_reload_keeps_services_and_dashboard_auth(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "lightbulb.yaml"
    good = config_text(tmp_path, AUTHED % port)
    config.write_text(good)
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("storage ready")
    cut_short = good[: good.index("dashboard:")]  # clickhouse and scheduler only
    no_services = good[: good.index("services:")]  # the dashboard, but no services
    for count, text in enumerate(["", "# truncated\n", cut_short, no_services], start=1):
        config.write_text(text)
        daemon.signal(signal.SIGHUP)
        assert wait_until(lambda n=count: rejections(daemon) >= n, 30), daemon.output[-3000:]
    assert "empty configuration" in daemon.output
    assert "no longer sets services, dashboard (a file cut short?)" in daemon.output
    assert "no longer sets services (a file cut short?)" in daemon.output
    url = f"http://127.0.0.2:{port}/api/v1/services"
    assert get(url).status_code == 401  # auth and bind as they were
    assert {s["id"] for s in get(url, "s3cret").json()["services"]} >= {"one"}
    config.write_text(no_services + "services: []\n")  # no services, on purpose
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(r"reloaded .*removed \['one'\]")
    code, _ = daemon.stop()
    assert code == 0, daemon.output[-3000:]


def test_a_move_to_a_taken_port_is_refused_whole_and_auth_stays(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "lightbulb.yaml"
    config.write_text(config_text(tmp_path, AUTHED % port))
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("storage ready")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        other = taken.getsockname()[1]
        moved = config_text(
            tmp_path, f"{{bind: 127.0.0.1, port: {other}}}", "  - {id: two, type: host}\n"
        )
        config.write_text(moved)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("reload rejected")
    assert f"dashboard.port: 127.0.0.1:{other} is already in use" in daemon.output
    url = f"http://127.0.0.2:{port}/api/v1/services"
    assert get(url).status_code == 401  # the old socket still has its auth
    listed = {s["id"] for s in get(url, "s3cret").json()["services"]}
    assert "two" not in listed  # nothing else of the refused file was applied either
    code, _ = daemon.stop()
    assert code == 0


RULED = """alert_rules:
  - {id: down, service: one, condition: "status >= FAILED", channels: [hook]}
  - {id: slow, service: one, condition: "consecutive_failures >= 3", channels: [hook]}
channels:
  hook: {type: webhook, url: "http://127.0.0.1:9/a"}
silences:
  - {id: nightly, service: one, cron: "0 2 * * *", duration: 1h}
"""


def test_the_reload_log_names_the_rules_silences_and_channels_it_changed(
    tmp_path: Path,
) -> None:
    """Not only services: a rule added, removed or disabled, a silence, a channel, a
    status page group and the alerting settings (flapping thresholds) are named in the
    "reloaded" line, never a channel's settings."""
    config, dashboard = tmp_path / "lightbulb.yaml", f"{{port: {free_port()}}}"
    config.write_text(config_text(tmp_path, dashboard) + RULED)
    daemon = DaemonProcess(config, tmp_path)
    daemon.wait_for("storage ready")
    edited = (RULED.replace('consecutive_failures >= 3", channels: [hook]}',
                            'consecutive_failures >= 3", channels: [hook], enabled: false}')
              .replace("  - {id: down,", "  - {id: gone,")
              .replace("127.0.0.1:9/a", "127.0.0.1:9/b")
              .split("silences:")[0] + "silences: []\n"
              + "alerting: {flapping: {high: 0.6}}\n"
              + "status_page: {groups: [{name: Front, services: [one]}]}\n")  # fmt: skip
    config.write_text(config_text(tmp_path, dashboard) + edited)
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(
        r"reloaded .*services: added none, removed none, changed none; "
        r"alert rules: added \['gone'\], removed \['down'\], disabled \['slow'\]; "
        r"relations: unchanged; silences: removed \['nightly'\]; channels: changed \['hook'\]; "
        r"status page groups: added \['Front'\]; alerting: changed \['flapping.high'\]"
    )
    assert "127.0.0.1:9/b" not in daemon.output
    code, _ = daemon.stop()
    assert code == 0, daemon.output[-3000:]
