-- service_relations: edges between services ("source depends_on target"), mirrored
-- from the YAML. Latest version per relation_id wins; removed ones get enabled = 0.
CREATE TABLE IF NOT EXISTS {{ db }}.service_relations {{ on_cluster }}
(
    relation_id       String,
    source_service_id String,
    target_service_id String,
    relation_type     LowCardinality(String),
    enabled           UInt8,
    updated_at        DateTime64(3, 'UTC')
)
ENGINE = {{ engine('service_relations', 'ReplacingMergeTree', 'updated_at') }}
ORDER BY relation_id;
