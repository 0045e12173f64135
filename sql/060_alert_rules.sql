-- alert_rules: alerting rules, mirrored from the YAML. Latest version per rule_id
-- wins; removed rules get enabled = 0 so alert history still resolves their names.
-- service_id holds the rule's selector as written: an id, "stack:<name>" or a glob.
CREATE TABLE IF NOT EXISTS {{ db }}.alert_rules {{ on_cluster }}
(
    rule_id               String,
    service_id            String,
    rule_name             String,
    condition             String,
    threshold             Float64,
    severity              LowCardinality(String),
    notification_channels Array(String),
    enabled               UInt8,
    updated_at            DateTime64(3, 'UTC')
)
ENGINE = {{ engine('alert_rules', 'ReplacingMergeTree', 'updated_at') }}
ORDER BY rule_id;
