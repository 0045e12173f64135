"""Every table the daemon's writer appends to, with its column order.

The rows come from four producers (recorder, alert log, log ingestion, daily
report); the writer, and tests that stand in for it, need the columns of all of
them. Kept here rather than in the recorder so the recorder need not import
the producers that depend on it.
"""

from __future__ import annotations

from server.alerting.log import TABLES as ALERT_TABLES
from server.analytics.flap_replay import COLUMNS as REPLAY_COLUMNS
from server.analytics.incidents import NOTE_COLUMNS
from server.analytics.report import REPORT_COLUMNS
from server.analytics.rule_coverage import COLUMNS as COVERAGE_COLUMNS
from server.logs.dlq import DLQ_COLUMNS
from server.recorder import TABLE_COLUMNS

WRITTEN_TABLES: dict[str, tuple[str, ...]] = {
    **TABLE_COLUMNS,
    **ALERT_TABLES,
    "log_dlq": DLQ_COLUMNS,
    "reports": REPORT_COLUMNS,
    "incident_notes": NOTE_COLUMNS,
    "rule_coverage": COVERAGE_COLUMNS,
    "flap_replays": REPLAY_COLUMNS,
}
