"""Alerting: rule conditions (and, as the alerting issue lands, evaluation and delivery)."""
