"""SIGTERM while ``lightbulb run`` is still starting: remembered, then a clean stop.

Python's default for SIGTERM kills the process at once (exit 143, nothing logged).
The daemon installs its own handler only once it is built, after 1-2 s of imports,
config loading and opening storage; a service manager stopping it in that window
got a dead process with nothing said. So the package's first line
(``server/__init__.py``) calls :func:`install_for`: for ``run`` only, SIGTERM is
remembered here, and :meth:`server.daemon.Daemon.run` turns it into the ordinary
stop (logged, flushed, exit 0) as soon as it takes over. A second SIGTERM before
then leaves at once (exit 143), so a start that hangs (a storage that never
answers) can still be stopped. Not covered: the interpreter's own start, before
the package's first line runs (tens of ms; nothing of ours exists yet).

Standard library only: it runs before anything else is imported.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from types import FrameType

_requested: list[int] = []


def install_for(argv: Sequence[str]) -> None:
    """Remember SIGTERM from now on if ``argv`` runs ``lightbulb run`` (the console
    script or ``python -m server.cli run``); otherwise leave signals alone."""
    if not argv or (argv[0] != "-m" and os.path.basename(argv[0]) != "lightbulb"):
        return  # imported by something else (tests, another program)
    words = [a for a in argv[1:] if not a.startswith("-")]
    if words[:1] == ["run"]:
        signal.signal(signal.SIGTERM, _remember)


def requested() -> int | None:
    """The signal received before the daemon took over, or None."""
    return _requested[0] if _requested else None


def _remember(signum: int, _frame: FrameType | None) -> None:
    if _requested:  # asked twice: the start-up is not worth waiting for
        os._exit(128 + signum)
    _requested.append(signum)
