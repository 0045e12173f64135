-- rule_coverage: from when each service was, or was not, selected by an enabled alert
-- rule. An incident is a firing period for a service a rule watches and a run of
-- FAILED checks for one no rule watches (server/analytics/incidents.py); which of the
-- two a run is depends on the rules when it began, not on today's, so adding,
-- removing or renaming a rule later never makes an incident (and its note) vanish.
-- The daemon appends a row when a service's coverage changes (at start and on each
-- reload, since = when that configuration took effect); rows are never replaced.
CREATE TABLE IF NOT EXISTS {{ db }}.rule_coverage {{ on_cluster }}
(
    service_id LowCardinality(String),
    since      DateTime64(3, 'UTC'),
    watched    UInt8
)
ENGINE = {{ engine('rule_coverage', 'MergeTree') }}
ORDER BY (service_id, since);
