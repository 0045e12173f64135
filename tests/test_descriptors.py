"""The embedded storage's descriptor check: cheap on every statement, and never blind to a
lowered limit.

The check runs before every chDB statement (dashboard reads included), so the count of
open descriptors is reused for a second while the headroom is wide; the limit itself
is read every time. Real chDB, a real ``setrlimit`` on this process.
"""

from __future__ import annotations

import os
import resource

import pytest

from server.core import descriptors
from server.storage.base import DescriptorsShort
from server.storage.embedded import EmbeddedStorage


def test_a_limit_lowered_right_after_a_wide_count_stops_the_next_statement(
    store: EmbeddedStorage,
) -> None:
    """A query counts (wide headroom, reused for a second); the limit then drops to 8 free:
    the very next statement is refused without entering chDB, the one after the limit is
    back runs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft < len(os.listdir("/proc/self/fd")) + 4 * 64:
        pytest.skip("needs a finite open-files limit with room for a wide count")
    assert store.query("SELECT 1 AS n") == [{"n": 1}]  # counted now: reused for RECOUNT s
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
    try:
        with pytest.raises(DescriptorsShort, match="open-files limit"):
            store.query("SELECT 1 AS n")
        assert descriptors.short() is not None
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert descriptors.short() is None
    assert store.query("SELECT 1 AS n") == [{"n": 1}]
