"""Load a config file and check it whole: the one place that knows every registry.

:mod:`server.config` reads the file's structure; the checks here span sections
or need a plugin: service types and each checker's settings (``checkers``),
channel types and settings (``server.notify``), rule conditions, annotation
templates and silence schedules (``server.alerting``), and the references
between sections. Plugins import nothing from here or from ``server.config``;
data flows one way. Every problem in the file is reported in one pass.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from server.config import Config, ConfigError, ConfigProblem, Draft, read_file, read_text
from server.config.checks import number_spellings
from server.core import redact
from server.validation import alerting, dashboard, services, slo

__all__ = ["Config", "ConfigError", "ConfigProblem", "load_config", "parse_config"]


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """The valid config in the file at ``path``, or :class:`ConfigError` with every problem.

    ``environ`` (default ``os.environ``) supplies ``${VAR}`` values and the
    ``CLICKHOUSE_*`` overrides. Never raises anything else for any file content.
    """
    return check(read_file(path, environ))


def parse_config(text: str, filename: str, environ: Mapping[str, str] | None = None) -> Config:
    """Like :func:`load_config` for text already read; ``filename`` is quoted in problems."""
    return check(read_text(text, filename, environ))


def check(draft: Draft) -> Config:
    """Run the cross-section checks on ``draft``; the config, or every problem at once."""
    services.check(draft)
    rules = alerting.check(draft)
    slo.check(draft, rules)
    dashboard.check(draft)
    number_spellings(draft)  # last: skips a value another check refused already
    # learned before finish(): a problem quoting a secret is masked in its report too
    draft.secrets |= redact.secrets_in(draft.config)
    # replaces the previous load's values (a daemon holds its own: redact.Hold)
    redact.load(
        redact.env_secrets(_env_secrets(draft)) | draft.secrets,
        credentials=redact.url_credentials(draft.config),
    )
    return draft.finish()


def _env_secrets(draft: Draft) -> set[str]:
    """The ``${ENV}`` values to mask: all but those used only as e-mail addresses.

    An address is no secret: it is written into the headers of every message sent,
    and an error must be able to quote it (``got "ops@exämple.org"``). A value used
    anywhere else too (an SMTP ``username`` equal to ``from``) stays masked.
    """
    data = draft.source.data
    channels = data.get("channels") if isinstance(data, dict) else None
    channels = channels if isinstance(channels, dict) else {}

    def address(path: tuple[object, ...]) -> bool:
        if len(path) < 3 or path[0] != "channels" or path[2] not in ("from", "to"):
            return False
        channel = channels.get(path[1])
        return isinstance(channel, dict) and channel.get("type") == "email"

    uses = draft.source.env_uses
    return {
        value
        for value in draft.source.env_values
        if not uses.get(value) or not all(address(path) for path in uses[value])
    }
