-- error_patterns: ERROR-and-above log rows grouped by fingerprint and hour:
-- the normalised text, a sample message, the services that logged it, first and
-- last seen and the count. Read with -Merge/sum/min/max ... GROUP BY fingerprint.
CREATE TABLE IF NOT EXISTS {{ db }}.error_patterns {{ on_cluster }}
(
    fingerprint UInt64,
    hour        DateTime('UTC'),
    pattern     AggregateFunction(any, String),
    sample      AggregateFunction(any, String),
    services    AggregateFunction(groupUniqArray, String),
    count       SimpleAggregateFunction(sum, UInt64),
    first_seen  SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen   SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = {{ engine('error_patterns', 'AggregatingMergeTree') }}
PARTITION BY toYYYYMM(hour)
ORDER BY (fingerprint, hour)
TTL hour + INTERVAL {{ retention_days }} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{ db }}.error_patterns_mv {{ on_cluster }}
TO {{ db }}.error_patterns
AS SELECT
    fingerprint,
    toStartOfHour(timestamp) AS hour,
    anyState(pattern) AS pattern,
    anyState(message) AS sample,
    groupUniqArrayState(toString(service_id)) AS services,
    count() AS count,
    min(timestamp) AS first_seen,
    max(timestamp) AS last_seen
FROM {{ db }}.service_logs
WHERE fingerprint != 0
GROUP BY fingerprint, hour;
