"""What masking secrets costs: per message, and on ``GET /api/v1/services`` at 1,000 services.

    python benchmarks/redact.py                      # 1,000 services, 40 requests
    python benchmarks/redact.py --services 1000 --requests 40 --messages 20000

Two parts, both in this process:

- **messages**: :class:`server.core.redact.Redactor` taught the secrets of N services
  (one ``${ENV}`` token per service, as a URL query value, plus a webhook secret and a
  dashboard token), then asked to redact typical check messages (150-250 characters,
  one in ten holding a secret, one in ten a URL with a credential query value):
  microseconds per message, and the one-off cost of learning the set;
- **API**: the dashboard app on embedded chDB (in a temp dir) with those N services,
  one day of 15 s checks (5.8 M rows per 1,000 services), every message naming its
  service's URL with the token in it; ``GET /api/v1/services`` wall and CPU
  milliseconds per request (p50, p95), and the share of it spent in the JSON
  provider's redaction (timed around the provider's ``dumps`` with and without it).

The machine is shared: the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from server.core import redact  # noqa: E402
from server.core.clock import SystemClock  # noqa: E402
from server.schema import Target, apply_schema  # noqa: E402
from server.storage.embedded import EmbeddedStorage  # noqa: E402
from server.validation import parse_config  # noqa: E402
from server.web import WebContext, create_app  # noqa: E402

INTERVAL = 15


def token(i: int) -> str:
    return f"tok{i:05d}{random.Random(i).getrandbits(64):016x}"


def environ(services: int) -> dict[str, str]:
    env = {f"TOKEN_{i}": token(i) for i in range(services)}
    env |= {"HOOK_SECRET": "hook-signing-key-3f9a", "DASH_TOKEN": "dash-bearer-81c2d7e0"}
    return env


def config_text(services: int) -> str:
    lines = ["dashboard: {auth: {type: bearer, tokens: {ops: '${DASH_TOKEN}'}}}", "services:"]
    lines += [
        f"  - {{id: svc-{i}, type: http, stack: stack-{i % 10}, interval: {INTERVAL}s, "
        f"http: {{url: 'http://127.0.0.1:9/t/{i}?token=${{TOKEN_{i}}}'}}, "
        f"slo: {{target: 99.9, window: 30d}}}}"
        for i in range(services)
    ]
    lines += [
        "channels:",
        "  hook: {type: webhook, url: 'http://127.0.0.1:9/hook', secret: '${HOOK_SECRET}'}",
    ]
    return "\n".join(lines) + "\n"


def messages(count: int, services: int) -> list[str]:
    rng = random.Random(7)
    out = []
    for n in range(count):
        i = rng.randrange(services)
        text = (
            f"HTTP 503 from http://127.0.0.1:9/t/{i} after 212 ms: upstream connect error or "
            f"disconnect/reset before headers. reset reason: connection failure, transport "
            f"failure reason: delayed connect error: 111 (attempt {n % 3 + 1} of 3)"
        )
        if n % 10 == 3:
            text += f" token {token(i)}"
        elif n % 10 == 7:
            text += f" GET /t/{i}?page=2&api_key=abc{n}"
        out.append(text)
    return out


def bench_messages(services: int, count: int) -> None:
    env = environ(services)
    redactor = redact.Redactor()
    began = time.perf_counter()
    redactor.learn(env.values())
    texts = messages(count, services)
    redactor.text(texts[0])  # the first call may build what learn() deferred
    learned = time.perf_counter() - began
    began = time.perf_counter()
    masked = sum(redact.MASK in redactor.text(t) for t in texts)
    took = time.perf_counter() - began
    per = took / count * 1e6
    print(f"messages: {len(env):,} secrets learned in {learned * 1000:.0f} ms; "
          f"{per:.1f} us per message ({count:,} messages, {masked:,} masked)")  # fmt: skip


def generate(store: EmbeddedStorage, services: int) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    store.execute(
        f"""
        INSERT INTO monitor.service_status
            (service_id, timestamp, status_code, message, service_type, stack, details,
             response_time_ms, cpu_usage, memory_usage)
        SELECT
            concat('svc-', toString(number % {services})) AS service_id,
            toDateTime64({{start:DateTime64(3, 'UTC')}}, 3, 'UTC')
                + toIntervalSecond(intDiv(number, {services}) * {INTERVAL}) AS timestamp,
            if(cityHash64(number) % 5 = 0, 2, 0) AS status_code,
            concat('HTTP 503 from http://127.0.0.1:9/t/', toString(number % {services}),
                   ': upstream connect error or disconnect/reset before headers') AS message,
            'http' AS service_type,
            concat('stack-', toString(number % {services} % 10)) AS stack,
            '{{}}' AS details,
            toUInt32(20 + cityHash64(number) % 180) AS response_time_ms,
            toFloat32(0) AS cpu_usage,
            toFloat32(0) AS memory_usage
        FROM numbers({services * 86400 // INTERVAL})
        """,
        {"start": start},
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_api(services: int, requests: int) -> None:
    with tempfile.TemporaryDirectory(prefix="lb-redact-bench-") as tmp:
        store = EmbeddedStorage(str(Path(tmp) / "db"), "monitor")
        apply_schema(store, Target("monitor"))
        generate(store, services)
        config = parse_config(config_text(services), "bench.yaml", environ(services))
        app = create_app(WebContext(config, store, SystemClock()))
        client = app.test_client()
        headers = {"Authorization": "Bearer dash-bearer-81c2d7e0"}
        provider = app.json
        spent: list[float] = []
        dumps = type(provider).dumps

        def timed(obj: object, **kwargs: object) -> str:
            began = time.process_time()
            text = dumps(provider, obj, **kwargs)  # type: ignore[arg-type]
            spent.append(time.process_time() - began)
            return text

        provider.dumps = timed  # type: ignore[method-assign]
        wall, cpu = [], []
        for _ in range(requests + 2):
            began, began_cpu = time.perf_counter(), time.process_time()
            response = client.get("/api/v1/services", headers=headers)
            wall.append((time.perf_counter() - began) * 1000)
            cpu.append((time.process_time() - began_cpu) * 1000)
            assert response.status_code == 200, response.data[:300]
            assert b"tok0" not in response.data, "a token leaked"
        wall, cpu, spent = wall[2:], cpu[2:], spent[2:]
        plain = []
        body = response.get_json()
        for _ in range(requests):
            began = time.process_time()
            super(type(provider), provider).dumps(body)  # type: ignore[misc]
            plain.append(time.process_time() - began)
        redaction = [(s - p) * 1000 for s, p in zip(spent, plain, strict=False)]
        print(f"GET /api/v1/services at {services:,} services ({len(response.data):,} bytes): "
              f"wall p50 {statistics.median(wall):.0f} ms p95 {pct(wall, 0.95):.0f} ms; "
              f"CPU p50 {statistics.median(cpu):.0f} ms; of it redaction p50 "
              f"{statistics.median(redaction):.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--skip-api", action="store_true")
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load average "
          f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}")  # fmt: skip
    bench_messages(args.services, args.messages)
    if not args.skip_api:
        bench_api(args.services, args.requests)
    print(f"load average after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
