-- anomaly_baselines: what normal looks like per service x metric x hour of day x
-- day of week over the last baselines.window: sample count, mean, stddev,
-- median, p95, p99 and the band mean -/+ k*stddev. Recomputed daily in SQL
-- (server/analytics/baselines.py); the newest computation per key wins.
-- metric: response_time_ms, cpu_usage, memory_usage, a checker metric, or
-- error_logs (ERROR-and-above log rows per hour).
CREATE TABLE IF NOT EXISTS {{ db }}.anomaly_baselines {{ on_cluster }}
(
    service_id  LowCardinality(String),
    metric      LowCardinality(String),
    day_of_week UInt8,
    hour_of_day UInt8,
    samples     UInt64,
    mean        Float64,
    stddev      Float64,
    median      Float64,
    p95         Float64,
    p99         Float64,
    lower       Float64,
    upper       Float64,
    window_days UInt16,
    computed_at DateTime64(3, 'UTC')
)
ENGINE = {{ engine('anomaly_baselines', 'ReplacingMergeTree', 'computed_at') }}
ORDER BY (service_id, metric, day_of_week, hour_of_day);
