-- silences: silences created at run time through the API (YAML silences live in
-- the config). Latest version per silence_id wins; expiring one early writes a
-- new version with ends_at = now, so the history of who silenced what stays.
-- service/rule are the matchers as given: a service id, "stack:<name>" or a glob;
-- an empty matcher matches everything.
CREATE TABLE IF NOT EXISTS {{ db }}.silences {{ on_cluster }}
(
    silence_id  String,
    service     String,
    rule        String,
    starts_at   DateTime64(3, 'UTC'),
    ends_at     DateTime64(3, 'UTC'),
    author      String,
    comment     String,
    created_at  DateTime64(3, 'UTC'),
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = {{ engine('silences', 'ReplacingMergeTree', 'updated_at') }}
ORDER BY silence_id;
