"""A real SMTP server on loopback for the email tests (aiosmtpd): plain, STARTTLS with a
self-signed certificate, login, a switch that refuses connections (server down), a delay
inside DATA (to kill a worker mid-send) and recipients it rejects. (No tests here.)"""

from __future__ import annotations

import datetime as dt
import email
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import Message as MailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from fhirhub.embedded.ports import free_port

USER, PASSWORD = "clinic", "s3cret"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    mail: MailMessage
    at: float

    @property
    def text(self) -> str:
        part = self.mail.get_payload(decode=True)
        return part.decode() if isinstance(part, bytes) else str(self.mail.get_payload())


@dataclass
class MailServer:
    port: int = field(default_factory=free_port)
    tls: bool = False
    login: bool = False
    reject: set[str] = field(default_factory=set)  # recipients answered 550
    data_delay_s: float = 0.0
    messages: list[Received] = field(default_factory=list)
    in_data: threading.Event = field(default_factory=threading.Event)
    cafile: str = ""
    controller: Controller | None = None

    @property
    def url(self) -> str:
        userinfo = f"{USER}:{PASSWORD}@" if self.login else ""
        query = f"?starttls&cafile={self.cafile}" if self.tls else ""
        return f"smtp://{userinfo}127.0.0.1:{self.port}{query}"

    def start(self) -> MailServer:
        server = self

        class Handler:
            async def handle_RCPT(
                self, smtp: Any, session: Any, envelope: Any, address: str, options: Any
            ) -> str:
                if address in server.reject:
                    return "550 5.1.1 no such mailbox"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
                server.in_data.set()
                if server.data_delay_s:
                    time.sleep(server.data_delay_s)
                mail = email.message_from_bytes(envelope.original_content or envelope.content)
                server.messages.append(
                    Received(envelope.mail_from, list(envelope.rcpt_tos), mail, time.time())
                )
                return "250 Message accepted"

        kwargs: dict[str, Any] = {}
        if self.tls:
            context, self.cafile = _self_signed()
            kwargs.update(tls_context=context, require_starttls=True)
        if self.login:
            kwargs.update(authenticator=_authenticate, auth_required=True)
            kwargs.update(auth_require_tls=self.tls)
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.recipients]


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # failures: aiosmtpd answers 535


def _self_signed() -> tuple[ssl.SSLContext, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="fhirhub-smtp-"))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, str(cert_path)
