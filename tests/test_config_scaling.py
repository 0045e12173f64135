"""Reading a config costs work linear in its size, bad entries included.

Attack report 2, item 4: N services with a bad value each took O(N^2) (20,000 of
them: 314 s), because each check scanned every problem found so far. Time is no
test (the machine is shared); the lines of our own code executed are, and they
grow 4x, not 16x, when the file grows 4x.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from server.validation import ConfigError, parse_config

REPO = str(Path(__file__).resolve().parents[1])
OURS = (f"{REPO}/server/", f"{REPO}/checkers/")


def _bad_services(count: int) -> str:
    rows = [
        f"  - {{id: s{i}, type: http, interval: bad{i}, timeout: 0s, "
        f"http: {{url: 'http://127.0.0.1:1/', timeout: x}}}}"
        for i in range(count)
    ]
    return "dashboard: {enabled: false}\nservices:\n" + "\n".join(rows) + "\n"


def _lines_executed(text: str) -> tuple[int, int]:
    """(lines of server/ and checkers/ run while reading ``text``, problems reported)."""
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename.startswith(OURS) else None

    sys.settrace(tracer)
    try:
        parse_config(text, "f.yaml", environ={})
    except ConfigError as exc:
        problems = len(exc.problems)
    else:  # pragma: no cover - the file is bad by construction
        pytest.fail("bad services were accepted")
    finally:
        sys.settrace(None)
    return count, problems


def test_bad_services_cost_linear_work() -> None:
    small, small_problems = _lines_executed(_bad_services(150))
    big, big_problems = _lines_executed(_bad_services(600))
    assert big_problems == 4 * small_problems
    assert big < 5 * small, f"4x the bad services took {big / small:.1f}x the work"
