-- The database every Lightbulb object lives in (clickhouse.database, default "monitor").
CREATE DATABASE IF NOT EXISTS {{ db }} {{ on_cluster }};
