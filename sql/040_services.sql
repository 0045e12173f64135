-- services: the configured services, mirrored from the YAML by bootstrap and the daemon.
--
-- ReplacingMergeTree(updated_at) keeps the newest version of each service_id, so a
-- sync only appends changed rows and history is never deleted: a service removed
-- from the YAML gets a new version with enabled = 0. Read with FINAL (or argMax).
-- status_config holds the checker block as written, ${VAR} references unexpanded,
-- so no secret value reaches the database.
CREATE TABLE IF NOT EXISTS {{ db }}.services {{ on_cluster }}
(
    service_id    String,
    label         String,
    service_type  LowCardinality(String),
    stack         LowCardinality(String),
    status_config String CODEC(ZSTD(3)),
    metric_config String CODEC(ZSTD(3)),
    enabled       UInt8,
    updated_at    DateTime64(3, 'UTC')
)
ENGINE = {{ engine('services', 'ReplacingMergeTree', 'updated_at') }}
ORDER BY service_id;
