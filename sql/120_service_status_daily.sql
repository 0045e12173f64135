-- service_status_daily: checks and "up" checks (OK or DEGRADED) per service and
-- UTC day, so 7- and 30-day uptime reads ~30 rows per service instead of ~720
-- hourly rows: what keeps the overview fast with months of history.
CREATE TABLE IF NOT EXISTS {{ db }}.service_status_daily {{ on_cluster }}
(
    service_id  LowCardinality(String),
    day         Date,
    checks      SimpleAggregateFunction(sum, UInt64),
    up          SimpleAggregateFunction(sum, UInt64),
    first_check SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = {{ engine('service_status_daily', 'AggregatingMergeTree') }}
PARTITION BY toYYYYMM(day)
ORDER BY (service_id, day)
TTL day + INTERVAL {{ retention_days }} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{ db }}.service_status_daily_mv {{ on_cluster }}
TO {{ db }}.service_status_daily
AS SELECT
    service_id,
    toDate(timestamp) AS day,
    count() AS checks,
    countIf({{ status_up("status_code") }}) AS up,
    min(timestamp) AS first_check
FROM {{ db }}.service_status
GROUP BY service_id, day;
