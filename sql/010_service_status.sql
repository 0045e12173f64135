-- service_status: one row per check of one service.
--
-- Sort key (service_id, timestamp): every dashboard, API and alert read is "one
-- service over a time range", which this key turns into one contiguous range of
-- granules; it also puts a service's rows side by side so the codecs below see
-- smooth series.
-- LowCardinality on service_id, service_type, stack: a few thousand distinct
-- values repeated across millions of rows are dictionary-encoded to 1-2 bytes.
-- timestamp DoubleDelta: checks come at a fixed interval, so the second
-- difference is ~0 and a row's timestamp costs a few bits.
-- status_code / response_time_ms T64: small integers with long equal runs.
-- cpu_usage / memory_usage Gorilla: XOR-encoding made for slowly changing floats.
-- message / details ZSTD(3): repetitive text, read rarely, worth the extra CPU.
-- Monthly partitions let TTL drop whole months; retention is clickhouse.retention_days.
CREATE TABLE IF NOT EXISTS {{ db }}.service_status {{ on_cluster }}
(
    service_id       LowCardinality(String),
    timestamp        DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    status_code      UInt8 CODEC(T64, ZSTD(1)),
    message          String CODEC(ZSTD(3)),
    service_type     LowCardinality(String),
    stack            LowCardinality(String),
    details          String CODEC(ZSTD(3)),
    response_time_ms Nullable(UInt32) CODEC(T64, ZSTD(1)),
    cpu_usage        Nullable(Float32) CODEC(Gorilla, ZSTD(1)),
    memory_usage     Nullable(Float32) CODEC(Gorilla, ZSTD(1))
)
ENGINE = {{ engine('service_status', 'MergeTree') }}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service_id, timestamp)
TTL toDateTime(timestamp) + INTERVAL {{ retention_days }} DAY
-- Lets the writer retry a batch with the same insert_deduplication_token without
-- duplicating it (deduplication is off for non-replicated tables by default).
-- Clean outdated parts every 1-2 s instead of every 30-40 s: with a steady
-- stream of small inserts ~300 parts piled up between cleanups and were
-- removed in one burst on up to 128 engine threads, which then stayed idle
-- (+125 threads, ~100 MB RSS for the embedded engine). Small batches often
-- cost a little CPU and keep the footprint flat.
SETTINGS non_replicated_deduplication_window = 10000,
    cleanup_delay_period = 1, max_cleanup_delay_period = 2, cleanup_delay_period_random_add = 1;
