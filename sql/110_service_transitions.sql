-- service_transitions: status changes only (OK -> FAILED ...), copied from the
-- transition rows the daemon writes to service_logs. "Down since when" and the
-- status history are read here: a few rows per service, not millions of checks.
CREATE TABLE IF NOT EXISTS {{ db }}.service_transitions {{ on_cluster }}
(
    service_id  LowCardinality(String),
    timestamp   DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    from_status UInt8,
    to_status   UInt8,
    message     String CODEC(ZSTD(3))
)
ENGINE = {{ engine('service_transitions', 'MergeTree') }}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service_id, timestamp)
TTL toDateTime(timestamp) + INTERVAL {{ retention_days }} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{ db }}.service_transitions_mv {{ on_cluster }}
TO {{ db }}.service_transitions
AS SELECT
    service_id,
    timestamp,
    toUInt8OrZero(context['previous_code']) AS from_status,
    toUInt8OrZero(context['new_code']) AS to_status,
    message
FROM {{ db }}.service_logs
WHERE source = 'lightbulb.transition';
