-- flap_replays: the one-time replay that declared the flapping periods of services no
-- rule watched from before the daemon recorded them. Since then the alert engine
-- declares every service's flapping as it happens, with the thresholds in force then,
-- as flapping / flapping_end rows of alert_events; incidents read those rows and never
-- judge flapping again, so changing alerting.flapping later rewrites no past incident.
-- At its first start with no row here the daemon replays the stored status changes
-- before its start (server/analytics/flap_replay.py) under the thresholds then in
-- force, writes what it found as alert_events rows, and this row: a later start, with
-- any thresholds, replays nothing. No TTL: one row per store, kept so that the replay
-- is never done twice, even once its rows have aged out.
CREATE TABLE IF NOT EXISTS {{ db }}.flap_replays {{ on_cluster }}
(
    replayed_at DateTime64(3, 'UTC'),
    judged_to   DateTime64(3, 'UTC'),
    flap_window UInt32,
    high        Float64,
    low         Float64,
    services    UInt32,
    periods     UInt32
)
ENGINE = {{ engine('flap_replays', 'MergeTree') }}
ORDER BY replayed_at;
