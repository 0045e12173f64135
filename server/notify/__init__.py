"""Notification channels: one module per channel type, found through :data:`REGISTRY`.

A channel in the YAML is ``name: {type: <type>, ...settings}``; the settings are
validated by the channel class's ``Settings`` model at config load, like a
checker's block. Modules are imported on first use, so a config without an
``apprise`` channel never imports Apprise.
"""

from __future__ import annotations

import importlib
from typing import Any

from server.notify.base import Channel

REGISTRY: dict[str, str] = {
    "webhook": "server.notify.webhook:WebhookChannel",
    "slack": "server.notify.slack:SlackChannel",
    "email": "server.notify.email:EmailChannel",
    "pagerduty": "server.notify.pagerduty:PagerDutyChannel",
    "apprise": "server.notify.apprise:AppriseChannel",
}
CHANNEL_TYPES: tuple[str, ...] = tuple(REGISTRY)  # the registry's keys: one list of types


def channel_class(channel_type: str) -> Any:
    module_name, _, class_name = REGISTRY[channel_type].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def settings_model(channel_type: str) -> Any:
    return channel_class(channel_type).Settings


def build_channel(name: str, channel_type: str, settings: dict[str, Any]) -> Channel[Any]:
    cls = channel_class(channel_type)
    channel: Channel[Any] = cls(name, cls.Settings.model_validate(settings))
    return channel
