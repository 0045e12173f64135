"""Logs pushed to Lightbulb: ingestion (NDJSON, OTLP/HTTP), validation, error patterns."""
