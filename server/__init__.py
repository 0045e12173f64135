"""Lightbulb: service-health monitoring daemon, storage, alerting and dashboard."""

import sys

from server import early_stop
from server.core.lean import (
    arrow_buffers_from_malloc,
    refuse_numpy_for_pyarrow,
    small_engine_thread_caches,
)

# before anything heavy is imported: SIGTERM during `lightbulb run`'s start is a clean stop
early_stop.install_for(sys.argv)

__version__ = "0.1.0"

refuse_numpy_for_pyarrow()  # before any module of ours (or chDB) imports pyarrow
arrow_buffers_from_malloc()
small_engine_thread_caches()  # before chDB's library loads
