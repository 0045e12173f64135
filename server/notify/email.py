"""``email``: SMTP with STARTTLS or implicit TLS, optional auth, HTML and text bodies.

Both bodies are Jinja templates in ``templates/notify/``. The ``Message-ID`` is
made from the notice's idempotency key, so a retried or resumed notice is the
same message to every mail system that drops duplicates by it.

Escaping: the HTML body is autoescaped (alert text quotes whatever a failing
service printed); the text body is plain text; header values go through
:func:`header`, which folds line breaks and control characters into spaces, so
check output can neither inject headers nor make the message unsendable.

Failures: an SMTP 4xx reply or a lost connection is transient (retried); a 5xx
reply or a refused login is permanent. Recipients are judged one by one: when
the server takes some and refuses others (``RCPT TO`` answered 4xx/5xx), the
attempt says "delivered to N of M" with each refused address and its code; the
next attempt goes only to those refused with a 4xx (transient); those refused
with a 5xx are given up, and once no transient one is left the notice fails
permanently. Which recipients already have a notice is remembered per notice id
while the daemon runs (after a restart, the Message-ID lets mail systems drop
the repeat).

An attempt is bounded as a whole (:mod:`server.notify.deadline`): connect,
greeting, TLS, login and DATA together within ``timeout`` + ``response_timeout``.
An attempt cut off after the message data began may have been delivered.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import threading
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from server.core.redact import redact
from server.core.secret import Secret, SecretStr
from server.notify.base import Channel, ChannelError, ChannelSettings, Notice, what
from server.notify.deadline import AttemptLimit, watch
from server.templating import environment

if TYPE_CHECKING:
    from typing_extensions import Buffer

_env = environment("notify")
_BREAKS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")


def header(text: str, limit: int = 200) -> str:
    """A header value: line breaks and control characters become one space; cut to ``limit``."""
    clean = redact(_BREAKS.sub(" ", text).strip())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


_ADDR = r"[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
_ADDRESS = re.compile(_ADDR)
# the whole entry: one address, bare or after a display name (quoted, or free of the
# characters that separate or start addresses), so no second address can follow
_ENTRY = re.compile(rf'\s*(?:{_ADDR}|(?:"(?:[^"\\]|\\.)*"|[^"<>(),;:@\\]*?)\s*<{_ADDR}>)\s*')
_EXAMPLE = 'like "ops@example.org" or "Ops <ops@example.org>"'


def check_address(text: str, key: str = "to") -> str:
    """``ops@example.org`` or ``Ops <ops@example.org>``; else a config error with the fix
    (``key``: ``to`` or ``from``, the setting the fix names).

    One address per entry, on one line: a line break would let the value write more
    headers (``Bcc:``), and a second address (``a@b.c, evil@x.y``) would be sent too
    while the config looks like it names one. The address itself is ASCII: a non-ASCII
    local part needs SMTPUTF8, which we do not send (a raw UTF-8 ``To:`` is not
    valid mail), and a non-ASCII domain is written in its IDNA (``xn--``) form; a
    display name may be any text (it is encoded as RFC 2047 asks)."""
    if _BREAKS.search(text):
        raise PydanticCustomError(
            "lightbulb", f"an e-mail address must not contain line breaks or control "
            f"characters; expected one address {_EXAMPLE}",
        )  # fmt: skip
    name, address = parseaddr(text)
    if not _ENTRY.fullmatch(text) and (len(getaddresses([text])) > 1 or "," in text or ";" in text):
        fix = ("list each recipient as its own item of \"to\"" if key == "to"
               else "\"from\" takes one sender address")  # fmt: skip
        raise PydanticCustomError(
            "lightbulb", f"expected one e-mail address per entry {_EXAMPLE}; {fix}"
        )
    if not address.isascii():
        raise PydanticCustomError("lightbulb", _not_ascii(address))
    if not _ENTRY.fullmatch(text) or not _ADDRESS.fullmatch(address) or (name and "<" not in text):
        raise PydanticCustomError("lightbulb", f"expected an e-mail address {_EXAMPLE}")
    return text


def _not_ascii(address: str) -> str:
    """The fix for a non-ASCII address: the domain's IDNA form, or an ASCII local part."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        return (
            "an e-mail address must be ASCII: its part before @ is not (that needs "
            "SMTPUTF8, which Lightbulb does not send); use an ASCII mailbox or alias"
        )
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        ascii_domain = "xn--…"
    return (
        f'an e-mail address must be ASCII: write its domain in IDNA form, "{local}@{ascii_domain}"'
    )


def _recipients(addresses: list[str]) -> list[str]:
    """At least one, each address once (case-insensitively, whatever display names):
    a repeated one is a second ``RCPT TO`` and a second copy of every notice."""
    if not addresses:
        raise PydanticCustomError(
            "lightbulb", 'expected at least one recipient, like to: ["ops@example.org"]'
        )
    seen: dict[str, int] = {}
    for index, entry in enumerate(addresses):
        address = parseaddr(entry)[1].lower()
        if address in seen:
            raise PydanticCustomError(
                "lightbulb",
                f'to[{index}] repeats the address of to[{seen[address]}] ("{address}"); '
                "list each recipient once",
            )
        seen[address] = index
    return addresses


Address = Annotated[str, AfterValidator(check_address)]
Sender = Annotated[str, AfterValidator(lambda text: check_address(text, "from"))]
Recipients = Annotated[list[Address], AfterValidator(_recipients)]


class EmailSettings(ChannelSettings):
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str = ""
    password: SecretStr = Secret("")
    sender: Sender = Field(alias="from")
    to: Recipients
    ca_cert: str | None = None  # for a private CA; system roots otherwise
    subject_prefix: str = "[lightbulb]"

    @property
    def recipients(self) -> list[str]:
        """The bare addresses of ``to`` (``RCPT TO``): ASCII, so the message goes out as
        plain RFC 5322 with encoded display names, never as SMTPUTF8 with raw UTF-8."""
        return [parseaddr(entry)[1] for entry in self.to]


def message_id(notice: Notice, sender: str) -> str:
    """``<notice-id@sender-domain>``: stable per notice; random only for unsaved notices."""
    domain = sender.rpartition("@")[2].strip(" >") or "lightbulb"
    if not notice.id:
        return make_msgid("lightbulb", domain=domain)
    return f"<{re.sub(r'[^A-Za-z0-9.-]', '-', notice.id)}@{domain}>"


def render(notice: Notice, settings: EmailSettings) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = header(f"{settings.subject_prefix} {notice.title}")
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate(notice.created.timestamp())
    message["Message-ID"] = message_id(notice, settings.sender)
    context = {"notice": notice, "lines": notice.lines(), "what": what}
    message.set_content(_env.get_template("email.txt").render(context))
    message.add_alternative(_env.get_template("email.html").render(context), subtype="html")
    return message


class _WatchedSMTP(smtplib.SMTP):
    """Its sockets are under the attempt's limit; it notes when the message data began."""

    data_began = False

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return watch(super()._get_socket(host, port, timeout))  # type: ignore[misc]

    def data(self, msg: Buffer | str) -> tuple[int, bytes]:
        self.data_began = True
        return super().data(msg)


class _WatchedSMTPSSL(smtplib.SMTP_SSL, _WatchedSMTP):
    """The same over implicit TLS (SMTP_SSL wraps what ``_WatchedSMTP`` opened)."""


Reply = tuple[int, bytes]  # an SMTP reply: code and text


def refusals(refused: dict[str, Reply]) -> str:
    """``a@x (550 no such user), b@y (451 try later)``."""
    return ", ".join(f"{addr} ({code} {_text(msg)})" for addr, (code, msg) in refused.items())


class EmailChannel(Channel[EmailSettings]):
    Settings = EmailSettings

    def __init__(self, name: str, settings: EmailSettings) -> None:
        super().__init__(name, settings)
        self._lock = threading.Lock()
        # notice id -> (recipients that accepted it, those refused for good): what a retry
        # of a partly refused notice leaves out
        self._progress: dict[str, tuple[set[str], dict[str, Reply]]] = {}

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_cert)

    def send(self, notice: Notice) -> None:
        s = self.settings
        message = render(notice, s)
        where = f"SMTP {s.host}:{s.port}"
        with self._lock:
            accepted, gone = self._progress.get(notice.id, (set(), {}))
            accepted, gone = set(accepted), dict(gone)
        pending = [a for a in s.recipients if a not in accepted and a not in gone]
        limit = AttemptLimit(self.attempt_limit)
        smtp: _WatchedSMTP | _WatchedSMTPSSL | None = None
        try:
            with limit:
                # connects (and reads the greeting) here, its socket already watched
                if s.security == "ssl":
                    smtp = _WatchedSMTPSSL(
                        s.host, s.port, timeout=self.timeout, context=self._tls()
                    )
                else:
                    smtp = _WatchedSMTP(s.host, s.port, timeout=self.timeout)
                with smtp:
                    if smtp.sock is not None:
                        smtp.sock.settimeout(self.response_timeout)  # connected: the answers
                    if s.security == "starttls":
                        smtp.starttls(context=self._tls())
                    if s.username:
                        smtp.login(s.username, s.password.reveal())
                    refused: dict[str, Reply] = smtp.send_message(message, to_addrs=pending)
        except smtplib.SMTPRecipientsRefused as exc:
            raise self._outcome(notice, accepted, gone, exc.recipients) or ChannelError(
                where
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            if limit.expired:
                maybe = smtp is not None and smtp.data_began
                raise ChannelError(
                    f"{where}: no complete exchange within {limit.seconds:g}s (the limit per "
                    f"attempt){'; it may have been received' if maybe else ''}",
                    maybe_delivered=maybe,
                ) from None
            raise self._error(exc, where, smtp is not None and smtp.data_began) from None
        accepted |= {a for a in pending if a not in refused}
        error = self._outcome(notice, accepted, gone, refused)
        if error is not None:
            raise error

    def _outcome(
        self, notice: Notice, accepted: set[str], gone: dict[str, Reply],
        refused: dict[str, Reply],
    ) -> ChannelError | None:  # fmt: skip
        """None when every recipient has the notice; else "delivered to N of M" with each
        refusal, transient while any refusal now is a 4xx (only those are tried again)."""
        gone = {**gone, **{a: r for a, r in refused.items() if r[0] >= 500}}
        transient = {a: r for a, r in refused.items() if r[0] < 500}
        with self._lock:
            if transient and notice.id:
                self._progress[notice.id] = (accepted, gone)
                while len(self._progress) > 1000:  # notices long settled
                    del self._progress[next(iter(self._progress))]
            else:
                self._progress.pop(notice.id, None)
        if not gone and not transient:
            return None
        s = self.settings
        got = len([a for a in s.recipients if a in accepted])
        return ChannelError(
            f"SMTP {s.host}:{s.port}: delivered to {got} of {len(s.to)}; refused: "
            + refusals({**gone, **transient}),
            permanent=not transient, maybe_delivered=got > 0,
        )  # fmt: skip

    def _error(self, exc: Exception, where: str, data_began: bool) -> ChannelError:
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            refused = f"{where} refused the login for {self.settings.username!r}"
            return ChannelError(f"{refused}: {_reply(exc)}", permanent=True)
        if isinstance(exc, smtplib.SMTPResponseException):
            return ChannelError(
                f"{where} answered {exc.smtp_code}: {_reply(exc)}", permanent=exc.smtp_code >= 500
            )
        if isinstance(exc, TimeoutError | smtplib.SMTPServerDisconnected) and data_began:
            return ChannelError(
                f"{where}: connection closed or silent mid-response after the message data; "
                "it may have been received", maybe_delivered=True,
            )  # fmt: skip
        return ChannelError(f"{where}: {exc or type(exc).__name__}")


def _reply(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    return error.decode(errors="replace") if isinstance(error, bytes) else str(error)


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
