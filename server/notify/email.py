"""``email``: SMTP with STARTTLS or implicit TLS, optional auth, HTML and text bodies.

Both bodies are Jinja templates in ``templates/notify/``. The ``Message-ID`` is
made from the notice's idempotency key, so a retried or resumed notice is the
same message to every mail system that drops duplicates by it.

Escaping: the HTML body is autoescaped (alert text quotes whatever a failing
service printed); the text body is plain text; header values go through
:func:`header`, which folds line breaks and control characters into spaces, so
check output can neither inject headers nor make the message unsendable.

Failures: an SMTP 4xx reply or a lost connection is transient (retried); a 5xx
reply, a refused login or refused recipients are permanent.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from pydantic import Field

from server.core.secret import Secret, SecretStr
from server.notify.base import Channel, ChannelError, ChannelSettings, Notice, what
from server.templating import environment

_env = environment("notify")
_BREAKS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")


def header(text: str, limit: int = 200) -> str:
    """A header value: line breaks and control characters become one space; cut to ``limit``."""
    clean = _BREAKS.sub(" ", text).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


class EmailSettings(ChannelSettings):
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str = ""
    password: SecretStr = Secret("")
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    ca_cert: str | None = None  # for a private CA; system roots otherwise
    subject_prefix: str = "[lightbulb]"


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


class EmailChannel(Channel[EmailSettings]):
    Settings = EmailSettings

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_cert)

    def send(self, notice: Notice) -> None:
        s = self.settings
        message = render(notice, s)
        where = f"SMTP {s.host}:{s.port}"
        try:
            smtp: smtplib.SMTP
            if s.security == "ssl":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=self.timeout, context=self._tls())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=self.timeout)
            with smtp:
                if smtp.sock is not None:
                    smtp.sock.settimeout(self.response_timeout)  # connected: now the answers
                if s.security == "starttls":
                    smtp.starttls(context=self._tls())
                if s.username:
                    smtp.login(s.username, s.password.reveal())
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            refused = f"{where} refused the login for {s.username!r}"
            raise ChannelError(f"{refused}: {_reply(exc)}", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(code >= 500 for code in codes)
            raise ChannelError(
                f"{where} refused the recipients: {exc.recipients}", permanent=permanent
            ) from None
        except smtplib.SMTPResponseException as exc:
            permanent = exc.smtp_code >= 500
            raise ChannelError(
                f"{where} answered {exc.smtp_code}: {_reply(exc)}", permanent=permanent
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(f"{where}: {exc or type(exc).__name__}") from None


def _reply(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    return error.decode(errors="replace") if isinstance(error, bytes) else str(error)
