-- service_status_summary: hourly health per service, kept up to date by ClickHouse
-- on every insert into service_status. The dashboard reads this, never raw checks,
-- for anything longer than a few hours: 30 days of one service is 720 rows.
--
-- The view writes into service_status_hourly (an explicit target, so TTL and
-- schema checks see a real table). Counters are SimpleAggregateFunction(sum) and
-- merge by addition; the last status needs argMax state (read it with
-- argMaxMerge). `failures` counts FAILED checks, the seed's headline figure, so
-- there is no separate count_failed. Average response time is
-- response_time_sum / response_time_count (checks without a time are not counted).
CREATE TABLE IF NOT EXISTS {{ db }}.service_status_hourly {{ on_cluster }}
(
    service_id          LowCardinality(String),
    hour                DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    checks              SimpleAggregateFunction(sum, UInt64),
    failures            SimpleAggregateFunction(sum, UInt64),
    count_ok            SimpleAggregateFunction(sum, UInt64),
    count_degraded      SimpleAggregateFunction(sum, UInt64),
    count_starting      SimpleAggregateFunction(sum, UInt64),
    count_stopped       SimpleAggregateFunction(sum, UInt64),
    count_unknown       SimpleAggregateFunction(sum, UInt64),
    response_time_sum   SimpleAggregateFunction(sum, UInt64),
    response_time_count SimpleAggregateFunction(sum, UInt64),
    response_time_max   SimpleAggregateFunction(max, UInt32),
    last_status         AggregateFunction(argMax, UInt8, DateTime64(3, 'UTC')),
    last_check          SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = {{ engine('service_status_hourly', 'AggregatingMergeTree') }}
PARTITION BY toYYYYMM(hour)
ORDER BY (service_id, hour)
TTL hour + INTERVAL {{ retention_days }} DAY
-- A retried batch is dropped by service_status; the window here (with the writer's
-- deduplicate_blocks_in_dependent_materialized_views) keeps it from counting twice.
-- Clean outdated parts every 1-2 s instead of every 30-40 s: with a steady
-- stream of small inserts ~300 parts piled up between cleanups and were
-- removed in one burst on up to 128 engine threads, which then stayed idle
-- (+125 threads, ~100 MB RSS for the embedded engine). Small batches often
-- cost a little CPU and keep the footprint flat.
SETTINGS non_replicated_deduplication_window = 10000,
    cleanup_delay_period = 1, max_cleanup_delay_period = 2, cleanup_delay_period_random_add = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{ db }}.service_status_summary {{ on_cluster }}
TO {{ db }}.service_status_hourly
AS SELECT
    service_id,
    toStartOfHour(timestamp) AS hour,
    count() AS checks,
    countIf(status_code = 2) AS failures,
    countIf(status_code = 0) AS count_ok,
    countIf(status_code = 1) AS count_degraded,
    countIf(status_code = 3) AS count_starting,
    countIf(status_code = 4) AS count_stopped,
    countIf(status_code = 5) AS count_unknown,
    sum(toUInt64(ifNull(response_time_ms, 0))) AS response_time_sum,
    count(response_time_ms) AS response_time_count,
    max(ifNull(response_time_ms, 0)) AS response_time_max,
    argMaxState(status_code, timestamp) AS last_status,
    max(timestamp) AS last_check
FROM {{ db }}.service_status
GROUP BY service_id, hour;
