"""Masking a pushed log record's text: one rule for NDJSON and OTLP records.

Bottom of :mod:`server.logs`: imports only :mod:`server.core.redact`.
"""

from __future__ import annotations

from server.core import redact

MAX_CONTEXT_KEY = 200  # characters of a context key kept (after masking)


def masked(  # noqa: PLR0917 - a record's six text columns, in their order
    service: str,
    message: str,
    error_code: str | None,
    stack: str | None,
    source: str,
    context: dict[str, str],
) -> tuple[str, str, str | None, str | None, str, dict[str, str]]:
    """A record's text with secrets masked, the same for NDJSON and OTLP (whose attribute
    keys are ``context`` keys here): service id (an unknown one is stored too), message,
    error code, stack, ``source``, context keys and values. Masked before the pattern is
    taken (it would otherwise hold a mangled spelling), before anything is stored, and
    before a key is cut to 200 characters. One scan when nothing is to be masked."""
    texts = (service, message, error_code or "", stack or "", source, *context, *context.values())
    if redact.hits("\x00".join(texts)):
        service, message, error_code, stack, source, context = redact.redact_value(
            (service, message, error_code, stack, source, context)
        )
    if any(len(key) > MAX_CONTEXT_KEY for key in context):
        context = {key[:MAX_CONTEXT_KEY]: value for key, value in context.items()}
    return service, message, error_code, stack, source, context


def long_key(key: object) -> str:
    """A context key over 200 characters: masked, then cut (cut first, a secret straddling
    the cut would keep its head)."""
    return redact.redact(str(key))[:MAX_CONTEXT_KEY]
