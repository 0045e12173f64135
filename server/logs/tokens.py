"""Is this push's token valid: the one answer for the web server's door and the handlers.

A push carries ``Authorization: Bearer <token>`` (RFC 6750 §2.1) with a value from
``logs.tokens``. The door (:mod:`server.web.admission`) asks from the headers, before
any body is read; the Flask handlers (:mod:`server.web.ingest`) ask again for requests
that reach them without the door (Flask's test client, another WSGI server).

A ``401`` carries ``WWW-Authenticate`` (RFC 9110 §11.6.1: a 401 must), as RFC 6750 §3
words it: ``Bearer realm="lightbulb-logs"``, plus ``error="invalid_token"`` when a
token was sent and is not one of ours (a request without credentials gets no error
code, §3.1).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.config.models import LogsConfig

REALM = "lightbulb-logs"
OFF = "log ingestion is off: set logs.tokens in the YAML"
REQUIRED = "a logs token is required (Authorization: Bearer <token>)"


@dataclass(frozen=True)
class PushTokens:
    """The push tokens of ``logs.tokens`` (their values, UTF-8 bytes; empty ones left out)."""

    secrets: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, logs: LogsConfig) -> PushTokens:
        return cls(tuple(t.reveal().encode() for t in logs.tokens.values() if t))

    @property
    def off(self) -> bool:
        """True when no token is set: ingestion is off and every push is refused (403)."""
        return not self.secrets

    def accepts(self, authorization: str) -> bool:
        """Whether the ``Authorization`` header's value carries one of the tokens.

        Compared in constant time (:func:`hmac.compare_digest`) against every token, so
        the time taken says neither how much of a token matched nor which one did.
        """
        given = _bearer(authorization)
        if given is None:
            return False
        matched = False
        for secret in self.secrets:
            matched |= hmac.compare_digest(secret, given)
        return matched


def challenge(authorization: str) -> str:
    """The ``WWW-Authenticate`` value of a 401 for a request whose ``Authorization`` header
    is ``authorization`` (empty when absent)."""
    if _bearer(authorization) is None:
        return f'Bearer realm="{REALM}"'
    return f'Bearer realm="{REALM}", error="invalid_token"'


def _bearer(authorization: str) -> bytes | None:
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token.encode()
