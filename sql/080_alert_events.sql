-- alert_events: every alert state transition and delivery outcome, as rows, so
-- the daemon can rebuild alert state after a restart and the dashboard can show
-- history. States: inactive, pending, firing, resolved.
-- event: transition (state change), notify (a held notification released after a
-- silence/inhibition/flap ended), repeat (repeat_interval), delivery (outcome at
-- one channel), flapping / flapping_end (per service, rule_id empty).
-- delivery_result: queued (handed to the channels), silenced, inhibited,
-- flapping, none (no channel configured), and on delivery rows sent or failed.
--
-- Sort key (service_id, timestamp): alert history is read per service and time.
-- rule_id, states, severity and delivery_result are small vocabularies
-- (LowCardinality); message and delivery_error are text (ZSTD).
CREATE TABLE IF NOT EXISTS {{ db }}.alert_events {{ on_cluster }}
(
    timestamp       DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    event           LowCardinality(String),
    rule_id         LowCardinality(String),
    service_id      LowCardinality(String),
    from_state      LowCardinality(String),
    to_state        LowCardinality(String),
    severity        LowCardinality(String),
    value           Nullable(Float64),
    message         String CODEC(ZSTD(3)),
    channels        Array(LowCardinality(String)),
    delivery_result LowCardinality(String),
    delivery_error  String CODEC(ZSTD(3)),
    caused_by       String
)
ENGINE = {{ engine('alert_events', 'MergeTree') }}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service_id, timestamp)
TTL toDateTime(timestamp) + INTERVAL {{ retention_days }} DAY
SETTINGS non_replicated_deduplication_window = 10000;
