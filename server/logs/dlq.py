"""Table ``log_dlq``'s columns: pushed records refused, kept with why (sql/ schema).

Apart from :mod:`server.logs.ingest` (which writes them) so that the list of written
tables (:mod:`server.tables`) does not load the decoders a daemon with its dashboard
off never uses."""

from __future__ import annotations

DLQ_COLUMNS = ("received_at", "source_address", "endpoint", "reason", "raw")
