"""Run `lightbulb run` as a real subprocess and follow its log output."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, ClassVar

import yaml

from server.spool import Spool
from server.storage import Storage
from server.tables import WRITTEN_TABLES
from server.writer import Writer


class DaemonProcess:
    started: ClassVar[list[DaemonProcess]] = []

    def __init__(
        self,
        config: Path,
        cwd: Path,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        """``prefix``: a command the daemon runs under (``setpriv ...`` to drop capabilities)."""
        self.started.append(self)
        self.config = config
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "server.cli", "run", "--config", str(config)],
            cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def checks(self, service_id: str) -> int:
        """Results the daemon has recorded for ``service_id`` (its /metrics counter)."""
        config = yaml.safe_load(self.config.read_text())
        port = config["dashboard"]["port"]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                text = answer.read().decode()
        except OSError:
            return 0
        match = re.search(
            rf'^lightbulb_service_checks_total{{service="{re.escape(service_id)}"}} (\S+)$',
            text,
            re.M,
        )
        return int(float(match.group(1))) if match else 0

    def wait_for_checks(self, service_id: str, count: int, seconds: float = 60) -> None:
        """Wait until the daemon has recorded ``count`` more results of ``service_id``."""
        target = self.checks(service_id) + count
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.checks(service_id) >= target:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"{service_id}: fewer than {count} more checks in {seconds} s; "
            f"output:\n{self.output[-4000:]}"
        )

    def wait_for(self, pattern: str, seconds: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = regex.search(line)
                if match:
                    return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"daemon never logged /{pattern}/; output:\n{self.output[-4000:]}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, seconds: float = 15) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(seconds)
        self._reader.join(5)
        return code, time.monotonic() - started

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def insert_what_the_spool_kept(store: Storage, spool_dir: Path) -> None:
    """Insert into ``store`` what a stopped daemon left in the log at ``spool_dir``, the way
    its next start does (recovery, then every batch, each under its dedup token); nothing
    when there is no log. For reading a stopped daemon's whole history."""
    if not (spool_dir / "wal").is_dir():
        return
    Writer(store, Spool(spool_dir, 2**30), columns=WRITTEN_TABLES).stop()


def put_note(port: int, token: str, iid: str, note: str) -> dict[str, Any]:
    """PUT ``note`` on incident ``iid`` of the daemon's dashboard on loopback ``port``
    (bearer ``token``); the incident as the API answers it (asserting 200)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/incidents/{iid}/note", method="PUT",
        data=json.dumps({"note": note}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 200
        answer: dict[str, Any] = json.load(response)
        return answer
