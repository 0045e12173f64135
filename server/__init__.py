"""Lightbulb: service-health monitoring daemon, storage, alerting and dashboard."""

__version__ = "0.1.0"
