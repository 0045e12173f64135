-- log_dlq: pushed log records that failed validation, kept for inspection with
-- the reason; the valid records of the same request are stored as usual.
-- raw is the record as received, cut to a limit (logs.dlq_raw_bytes).
CREATE TABLE IF NOT EXISTS {{ db }}.log_dlq {{ on_cluster }}
(
    received_at    DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    source_address String,
    endpoint       LowCardinality(String),
    reason         String,
    raw            String CODEC(ZSTD(3))
)
ENGINE = {{ engine('log_dlq', 'MergeTree') }}
PARTITION BY toYYYYMM(received_at)
ORDER BY received_at
TTL toDateTime(received_at) + INTERVAL {{ retention_days }} DAY
SETTINGS non_replicated_deduplication_window = 10000;
