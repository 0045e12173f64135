"""A small stand-in service for the demo: serves /health, writes a pidfile and a log.

    python examples/demo_worker.py --port 8099 --dir var/demo

Every few seconds it logs a job line to its log file, now and then a WARNING or
an ERROR (the daemon tails the file for demo-worker); each HTTP request goes to an
access log pushed to Lightbulb's /api/v1/logs as demo-http (``--push``). The two
streams are separate, so each line reaches the dashboard once. /health answers
slowly once in a while. It also receives the demo's webhook notifications on
POST /alerts and prints them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ACCESS = logging.getLogger("demo.access")  # pushed as demo-http, never written to the file
ACCESS.propagate = False


class Health(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return

    def do_GET(self) -> None:
        began = time.monotonic()
        if random.random() < 0.1:  # noqa: S311 - demo jitter, not crypto
            time.sleep(0.6)
        body = json.dumps({"status": "ok", "pid": os.getpid()}).encode()
        code = 200 if self.path == "/health" else 404
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        took = (time.monotonic() - began) * 1000  # logged after answering: pushing takes time
        level = logging.WARNING if took > 500 else logging.INFO
        ACCESS.log(level, "GET %s %d in %.0f ms", self.path, code, took)

    def do_POST(self) -> None:
        """The demo's webhook channel: print each notification's title."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        ok = self.path == "/alerts"
        if ok:
            print(f"[demo webhook] {json.loads(body).get('title', '')}", flush=True)
        self.send_response(204 if ok else 404)
        self.end_headers()


class PushHandler(logging.Handler):
    """Push each record to Lightbulb's NDJSON endpoint (what a real service would do)."""

    def __init__(self, url: str, token: str, service_id: str) -> None:
        super().__init__(level=logging.INFO)
        self.url, self.token, self.service_id = url, token, service_id

    def emit(self, record: logging.LogRecord) -> None:
        line = json.dumps({
            "timestamp": record.created,
            "service_id": self.service_id,
            "level": record.levelname,
            "message": record.getMessage(),
            "source": "access-log",
            "context": {"logger": record.name},
        })  # fmt: skip
        request = urllib.request.Request(  # noqa: S310 - a loopback URL from our own script
            self.url, data=line.encode(), method="POST",
            headers={"Authorization": f"Bearer {self.token}"},
        )  # fmt: skip
        # the daemon may not be up yet; the log file still has the line
        with contextlib.suppress(OSError):
            urllib.request.urlopen(request, timeout=2).close()  # noqa: S310


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--dir", default="var/demo")
    parser.add_argument("--push", default="", help="Lightbulb's /api/v1/logs URL")
    parser.add_argument("--token", default=os.environ.get("LIGHTBULB_DEMO_TOKEN", "demo-token"))
    args = parser.parse_args()
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "worker.pid").write_text(str(os.getpid()))
    logging.basicConfig(
        filename=directory / "worker.log",
        format="%(asctime)s %(levelname)s demo-worker: %(message)s",
        level=logging.INFO,
    )
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log = logging.getLogger()
    if args.push:
        ACCESS.setLevel(logging.INFO)
        ACCESS.addHandler(PushHandler(args.push, args.token, "demo-http"))
    jobs = 0
    while True:
        time.sleep(3)
        jobs += 1
        roll = random.random()  # noqa: S311
        if roll < 0.1:
            log.error("job %d failed: upstream timed out after 5000 ms", jobs)
        elif roll < 0.25:
            log.warning("job %d retried: queue depth %d", jobs, random.randint(50, 500))  # noqa: S311
        else:
            log.info("job %d done", jobs)


if __name__ == "__main__":
    main()
