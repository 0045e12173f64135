-- service_current: the newest check of every service, one row per service once
-- merged, so the dashboard's "what is broken now" never scans service_status.
-- Read with the -Merge combinators (argMaxMerge(status_code) ... GROUP BY service_id).
CREATE TABLE IF NOT EXISTS {{ db }}.service_current {{ on_cluster }}
(
    service_id       LowCardinality(String),
    last_check       SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    status_code      AggregateFunction(argMax, UInt8, DateTime64(3, 'UTC')),
    message          AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    service_type     AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    stack            AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    response_time_ms AggregateFunction(argMax, Nullable(UInt32), DateTime64(3, 'UTC'))
)
ENGINE = {{ engine('service_current', 'AggregatingMergeTree') }}
ORDER BY service_id
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{ db }}.service_current_mv {{ on_cluster }}
TO {{ db }}.service_current
AS SELECT
    service_id,
    max(timestamp) AS last_check,
    argMaxState(status_code, timestamp) AS status_code,
    argMaxState(message, timestamp) AS message,
    argMaxState(toString(service_type), timestamp) AS service_type,
    argMaxState(toString(stack), timestamp) AS stack,
    argMaxState(response_time_ms, timestamp) AS response_time_ms
FROM {{ db }}.service_status
GROUP BY service_id;
