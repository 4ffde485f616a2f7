"""Email over SMTP (smtplib): FHIRHUB_SMTP_URL smtp://user:pass@host:port[?starttls],
smtps:// for SSL from the first byte, optional `cafile=` for a private CA.

The mail server cannot de-duplicate, so the moment the message body is handed over
(DATA) is reported to the caller first: a worker that dies after it must not send again.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import parse_qs, unquote, urlsplit

from fhirhub.channels.message import Message, Outcome
from fhirhub.fhir.errors import ConfigurationError

PORTS = {"smtp": 25, "smtps": 465}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    ssl: bool
    starttls: bool
    username: str | None
    password: str | None
    sender: str
    cafile: str | None = None

    @classmethod
    def from_url(cls, url: str, sender: str) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in PORTS or not parts.hostname:
            raise ConfigurationError(
                "FHIRHUB_SMTP_URL must look like smtp://user:pass@host:port[?starttls] or "
                f"smtps://..., got scheme {parts.scheme!r}"
            )
        query = parse_qs(parts.query, keep_blank_values=True)
        if not sender or "@" not in sender:
            raise ConfigurationError("FHIRHUB_SMTP_FROM must be an email address")
        return cls(
            host=parts.hostname,
            port=parts.port or PORTS[parts.scheme],
            ssl=parts.scheme == "smtps",
            starttls="starttls" in query,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            sender=sender,
            cafile=query["cafile"][0] if query.get("cafile") else None,
        )


class EmailChannel:
    resend_safe = False  # SMTP has no idempotency key

    def __init__(self, config: SmtpConfig, timeout_s: float):
        self.config = config
        self.timeout_s = timeout_s

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.cafile)

    def build(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.config.sender
        mail["To"] = message.to
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = f"<{message.communication_id}@fhirhub>"
        mail["Content-Language"] = message.language
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
        mail.set_content(message.text)
        return mail

    def send(self, message: Message, handing_over: Callable[[], None]) -> Outcome:
        config = self.config
        handed = False
        try:
            smtp: smtplib.SMTP
            if config.ssl:
                smtp = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=self.timeout_s, context=self._context()
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=self.timeout_s)
            with smtp:
                smtp.ehlo()
                if config.starttls:
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if config.username:
                    _login(smtp, config.username, config.password or "")
                code, reply = smtp.mail(config.sender)
                if code != 250:
                    return _rejected(code, reply, "MAIL FROM")
                code, reply = smtp.rcpt(message.to)
                if code not in (250, 251):
                    return _rejected(code, reply, "RCPT TO")
                handing_over()
                handed = True
                code, reply = smtp.data(self.build(message).as_bytes())
                if code != 250:
                    return _rejected(code, reply, "DATA")
            return Outcome.sent()
        except smtplib.SMTPAuthenticationError as error:
            return Outcome.refused(f"SMTP login refused: {error.smtp_code}")
        except smtplib.SMTPResponseException as error:
            return _rejected(error.smtp_code, error.smtp_error, "SMTP")
        except (TimeoutError, smtplib.SMTPException, OSError) as error:
            # Broken while the server was reading the message: it may have it.
            return Outcome.transient(f"SMTP: {type(error).__name__}: {error}", in_doubt=handed)


def _login(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """One AUTH attempt (PLAIN, else LOGIN): smtplib's login() would try every mechanism in
    turn, and some servers drop the connection after the first refusal."""
    offered = smtp.esmtp_features.get("auth", "").upper().split()
    mechanism = next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
    if mechanism is None:
        smtp.login(username, password)  # let smtplib pick (CRAM-MD5) or explain
        return
    smtp.user, smtp.password = username, password
    method = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
    smtp.auth(mechanism, method)


def _rejected(code: int, reply: bytes | str, step: str) -> Outcome:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    error = f"{step} answered {code} {text[:200]}"
    return Outcome.refused(error) if 500 <= code < 600 else Outcome.transient(error)
