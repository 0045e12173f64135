-- incident_notes: the free-text note an operator keeps on an incident (/incidents/<id>).
-- Incidents themselves are derived from alert_events and service_transitions
-- (server/analytics/incidents.py); only the note is stored, keyed by the incident's
-- stable id. Each save writes a new version; the newest updated_at wins, so who
-- changed a note and when stays readable until a merge folds old versions away.
-- An empty note clears it.
CREATE TABLE IF NOT EXISTS {{ db }}.incident_notes {{ on_cluster }}
(
    incident_id String,
    note        String CODEC(ZSTD(3)),
    author      String,
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = {{ engine('incident_notes', 'ReplacingMergeTree', 'updated_at') }}
ORDER BY incident_id;
