"""Loaded by a daemon run with ``PYTHONPATH`` here: its embedded inserts wedge for good.

With ``LB_TEST_WEDGE_FIFO`` naming a FIFO, an ``insert_arrow`` of pushed logs takes the storage's
mutex (as a real chDB query does) and blocks in a real system call: ``open`` of the
FIFO until the test opens its write end, then ``read`` of bytes that never come, the
way a chDB query that met EMFILE never came back (atk12d F4). Other tables' inserts
(the start's, the checks') go through: the daemon starts and runs as ever. With
``LB_TEST_HUNG_AFTER`` (s), an insert is called hung after that long, not 120 s.
"""

from __future__ import annotations

import os

FIFO = os.environ.get("LB_TEST_WEDGE_FIFO")

if FIFO:
    from typing import Any

    from server.storage.embedded import EmbeddedStorage

    original = EmbeddedStorage.insert_arrow

    def wedged(self: EmbeddedStorage, table: str, *args: Any, **kwargs: Any) -> int:
        if table != "service_logs":
            return original(self, table, *args, **kwargs)
        with self._mutex:
            fd = os.open(str(FIFO), os.O_RDONLY)
            os.read(fd, 1)
        raise AssertionError("the test never writes to the FIFO")

    EmbeddedStorage.insert_arrow = wedged  # type: ignore[method-assign]

    if os.environ.get("LB_TEST_HUNG_AFTER"):  # seconds, instead of the 120 s of production
        import server.inserter

        server.inserter.HUNG = float(os.environ["LB_TEST_HUNG_AFTER"])
