-- notifications: the alert outbox. One row when a notice is queued for a channel
-- (written to disk before the first attempt, with the notice itself as JSON), then
-- one row per attempt outcome; the newest revision of a notice_id is its state:
-- queued, retrying, delivered, failed (permanent = 1: the receiver's answer ruled
-- out another try; 0: past its deadline), dropped.
-- After a restart, notices still queued or retrying are sent again with the same
-- notice_id, their idempotency key, and the same deadline.
--
-- alert_ids, item_states and incidents list the alerts the notice carries (one
-- incident is one firing period of one alert), so the delivery state of each
-- alert at each channel is one query away (server/alerting/log.py).
CREATE TABLE IF NOT EXISTS {{ db }}.notifications {{ on_cluster }}
(
    notice_id   String,
    revision    UInt32,
    channel     LowCardinality(String),
    kind        LowCardinality(String),
    group_key   String,
    state       LowCardinality(String),
    queued_at   DateTime64(3, 'UTC'),
    changed_at  DateTime64(3, 'UTC'),
    deadline    DateTime64(3, 'UTC'),
    attempts    UInt32,
    error       String CODEC(ZSTD(3)),
    permanent   UInt8,
    alert_ids   Array(String),
    item_states Array(LowCardinality(String)),
    incidents   Array(String),
    notice      String CODEC(ZSTD(3))
)
ENGINE = {{ engine('notifications', 'MergeTree') }}
PARTITION BY toYYYYMM(queued_at)
ORDER BY (channel, queued_at, notice_id)
TTL toDateTime(queued_at) + INTERVAL {{ retention_days }} DAY;
