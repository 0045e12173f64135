-- reports: the daily report, one per day (the newest build wins), as HTML and
-- text plus a JSON summary of the figures, for the dashboard's /reports.
CREATE TABLE IF NOT EXISTS {{ db }}.reports {{ on_cluster }}
(
    day          Date,
    generated_at DateTime64(3, 'UTC'),
    summary      String CODEC(ZSTD(3)),
    html         String CODEC(ZSTD(3)),
    text         String CODEC(ZSTD(3))
)
ENGINE = {{ engine('reports', 'ReplacingMergeTree', 'generated_at') }}
ORDER BY day;
