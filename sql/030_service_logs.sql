-- service_logs: log entries of services, and status transitions written by the daemon.
--
-- Sort key (service_id, timestamp): logs are read per service, newest first.
-- log_level / source LowCardinality: a handful of values.
-- timestamp Delta (not DoubleDelta): log lines arrive irregularly.
-- Text columns ZSTD(3): log text compresses well and is read far less than written.
-- The token bloom filter lets the dashboard's text search skip granules that
-- cannot contain a searched word instead of scanning every message.
CREATE TABLE IF NOT EXISTS {{ db }}.service_logs {{ on_cluster }}
(
    service_id  LowCardinality(String),
    timestamp   DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    log_level   LowCardinality(String),
    message     String CODEC(ZSTD(3)),
    source      LowCardinality(String),
    error_code  Nullable(String) CODEC(ZSTD(1)),
    stack_trace Nullable(String) CODEC(ZSTD(3)),
    context     Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    -- ERROR and above: the message with variable parts replaced, and its 64-bit id
    -- (server/logs/patterns.py); empty/0 for other levels. Feeds error_patterns.
    pattern     String DEFAULT '' CODEC(ZSTD(3)),
    fingerprint UInt64 DEFAULT 0,
    INDEX message_tokens message TYPE tokenbf_v1(8192, 3, 0) GRANULARITY 4
)
ENGINE = {{ engine('service_logs', 'MergeTree') }}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service_id, timestamp)
TTL toDateTime(timestamp) + INTERVAL {{ retention_days }} DAY
-- Clean outdated parts every 1-2 s instead of every 30-40 s: with a steady
-- stream of small inserts ~300 parts piled up between cleanups and were
-- removed in one burst on up to 128 engine threads, which then stayed idle
-- (+125 threads, ~100 MB RSS for the embedded engine). Small batches often
-- cost a little CPU and keep the footprint flat.
SETTINGS non_replicated_deduplication_window = 10000,
    cleanup_delay_period = 1, max_cleanup_delay_period = 2, cleanup_delay_period_random_add = 1;
