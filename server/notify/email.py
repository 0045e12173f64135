"""``email``: SMTP with STARTTLS or implicit TLS, optional auth, HTML and text bodies.

Both bodies are Jinja templates in ``templates/notify/``; the HTML one is
autoescaped, since alert messages quote whatever a failing service printed.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from pydantic import Field

from server.config.types import SecretStr
from server.core.secret import Secret
from server.notify.base import Channel, ChannelSettings, DeliveryError, Notice
from server.templating import environment

_env = environment("notify")


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


def render(notice: Notice, settings: EmailSettings) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"{settings.subject_prefix} {notice.title}".strip()
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate(notice.created.timestamp())
    message["Message-ID"] = make_msgid("lightbulb")
    context = {"notice": notice, "lines": notice.lines()}
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
                if s.security == "starttls":
                    smtp.starttls(context=self._tls())
                if s.username:
                    smtp.login(s.username, s.password.reveal())
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            refused = f"{where} refused the login for {s.username!r}"
            raise DeliveryError(f"{refused}: {_reply(exc)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"{where} refused the recipients: {exc.recipients}") from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"{where} answered {exc.smtp_code}: {_reply(exc)}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{where}: {exc or type(exc).__name__}") from None


def _reply(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    return error.decode(errors="replace") if isinstance(error, bytes) else str(error)
