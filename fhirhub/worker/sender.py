"""Outbound notification requests: the only place fhirhub makes HTTP calls.

The host is resolved once, every address checked against the allowlist, and the request
is sent to that checked address (Host header and TLS SNI keep the name), so a DNS answer
that changes between check and connect cannot redirect it inward. Redirects are not
followed and response bodies are not read.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from fhirhub.subscriptions.address_policy import AddressNotAllowed, AddressPolicy

Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status: int | None = None
    error: str = ""
    permanent: bool = False  # retrying cannot help (address not allowed, malformed URL)


class Sender:
    def __init__(self, policy: AddressPolicy, timeout_s: float, resolver: Resolver = resolve):
        self.policy = policy
        self.resolver = resolver
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False
        )
        self.timeout_s = timeout_s

    def close(self) -> None:
        self.client.close()

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        try:
            target, host_header, sni = self._pin(url)
        except AddressNotAllowed as error:
            return SendResult(False, error=f"address not allowed: {error}", permanent=True)
        except OSError as error:
            return SendResult(False, error=f"cannot resolve {url[:100]}: {error}")
        request_headers = {**headers, "Host": host_header}
        extensions = {"sni_hostname": sni} if sni else {}
        try:
            with self.client.stream(
                "POST", target, content=body, headers=request_headers, extensions=extensions
            ) as response:
                status = response.status_code
        except httpx.TimeoutException:
            return SendResult(False, error=f"no response within {self.timeout_s:g} s")
        except httpx.HTTPError as error:
            return SendResult(False, error=f"{type(error).__name__}: {error}"[:300])
        if 200 <= status < 300:
            return SendResult(True, status)
        return SendResult(False, status, f"HTTP {status}")

    def _pin(self, url: str) -> tuple[str, str, str | None]:
        scheme, host, port = self.policy.check_url(url)
        addresses = self.resolver(host, port)
        self.policy.check_addresses(host, addresses)
        address = addresses[0]
        parts = urlsplit(url)
        is_v6 = ipaddress.ip_address(address.split("%", 1)[0]).version == 6
        literal = f"[{address}]" if is_v6 else address
        default_port = 443 if scheme == "https" else 80
        netloc = literal if port == default_port else f"{literal}:{port}"
        host_header = parts.netloc.rsplit("@", 1)[-1]
        target = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        return target, host_header, host if scheme == "https" else None
