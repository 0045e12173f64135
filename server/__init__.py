"""Lightbulb: service-health monitoring daemon, storage, alerting and dashboard."""

import sys

from server import early_stop

# before anything heavy is imported: SIGTERM during `lightbulb run`'s start is a clean stop
early_stop.install_for(sys.argv)

__version__ = "0.1.0"
