-- service_metrics: one row per metric sample of a check.
--
-- Sort key (service_id, metric_name, timestamp): charts read one metric of one
-- service over a range; with the name in the key each series is contiguous and
-- Gorilla sees consecutive values of the same series.
-- metric_name / metric_unit LowCardinality: a small vocabulary.
-- tags Map with LowCardinality keys: keys repeat (mount, interface, queue).
CREATE TABLE IF NOT EXISTS {{ db }}.service_metrics {{ on_cluster }}
(
    service_id   LowCardinality(String),
    timestamp    DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    metric_name  LowCardinality(String),
    metric_value Float64 CODEC(Gorilla, ZSTD(1)),
    metric_unit  LowCardinality(String),
    tags         Map(LowCardinality(String), String) CODEC(ZSTD(1))
)
ENGINE = {{ engine('service_metrics', 'MergeTree') }}
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service_id, metric_name, timestamp)
TTL toDateTime(timestamp) + INTERVAL {{ retention_days }} DAY
-- Clean outdated parts every 1-2 s instead of every 30-40 s: with a steady
-- stream of small inserts ~300 parts piled up between cleanups and were
-- removed in one burst on up to 128 engine threads, which then stayed idle
-- (+125 threads, ~100 MB RSS for the embedded engine). Small batches often
-- cost a little CPU and keep the footprint flat.
SETTINGS non_replicated_deduplication_window = 10000,
    cleanup_delay_period = 1, max_cleanup_delay_period = 2, cleanup_delay_period_random_add = 1;
