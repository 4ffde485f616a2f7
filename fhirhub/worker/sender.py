"""Outbound notification requests: the only place fhirhub makes HTTP calls.

The host is resolved once, every address checked against the allowlist, and the request
is sent to that checked address (Host header and TLS SNI keep the name), so a DNS answer
that changes between check and connect cannot redirect it inward. Redirects are not
followed and response bodies are not read.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from fhirhub.subscriptions.address_policy import AddressNotAllowed, AddressPolicy

Resolver = Callable[[str, int], list[str]]
DNS_TTL_S = 30.0


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status: int | None = None
    error: str = ""
    permanent: bool = False  # retrying cannot help (address not allowed, malformed URL)
    retry_after_s: float | None = None  # the receiver's Retry-After (delta-seconds form)


def _seconds(value: str | None) -> float | None:
    """Retry-After as delta-seconds; the HTTP-date form is ignored (the backoff applies)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


class Sender:
    def __init__(self, policy: AddressPolicy, timeout_s: float, resolver: Resolver = resolve):
        self.policy = policy
        self.resolver = resolver
        # Answers are reused briefly; every send still checks them and connects to them.
        self._resolved: dict[tuple[str, int], tuple[list[str], float]] = {}
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False
        )
        self.timeout_s = timeout_s

    def close(self) -> None:
        self.client.close()

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        try:
            targets = self._pin(url)
        except AddressNotAllowed as error:
            return SendResult(False, error=f"address not allowed: {error}", permanent=True)
        except OSError as error:
            return SendResult(False, error=f"cannot resolve {url[:100]}: {error}")
        result = SendResult(False, error="no address")
        for target, host_header, sni in targets:
            result = self._post(target, host_header, sni, body, headers)
            if result.status is not None or "ConnectError" not in result.error:
                break  # only a refused connection is worth trying the next address for
        return result

    def _post(
        self, target: str, host_header: str, sni: str | None, body: bytes, headers: dict[str, str]
    ) -> SendResult:
        extensions = {"sni_hostname": sni} if sni else {}
        try:
            with self.client.stream(
                "POST",
                target,
                content=body,
                headers={**headers, "Host": host_header},
                extensions=extensions,
            ) as response:
                status = response.status_code
                retry_after = _seconds(response.headers.get("Retry-After"))
        except httpx.TimeoutException:
            return SendResult(False, error=f"no response within {self.timeout_s:g} s")
        except httpx.HTTPError as error:
            return SendResult(False, error=f"{type(error).__name__}: {error}"[:300])
        if 200 <= status < 300:
            return SendResult(True, status)
        return SendResult(False, status, f"HTTP {status}", retry_after_s=retry_after)

    def _pin(self, url: str) -> list[tuple[str, str, str | None]]:
        """(URL with a checked address, Host header, TLS server name) per resolved address."""
        scheme, host, port = self.policy.check_url(url)
        cached = self._resolved.get((host, port))
        if cached is None or time.monotonic() - cached[1] > DNS_TTL_S:
            cached = (self.resolver(host, port), time.monotonic())
            self._resolved[(host, port)] = cached
        addresses = cached[0]
        self.policy.check_addresses(host, addresses)
        parts = urlsplit(url)
        host_header = parts.netloc.rsplit("@", 1)[-1]
        default_port = 443 if scheme == "https" else 80
        pinned = []
        for address in addresses:
            is_v6 = ipaddress.ip_address(address.split("%", 1)[0]).version == 6
            literal = f"[{address}]" if is_v6 else address
            netloc = literal if port == default_port else f"{literal}:{port}"
            target = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
            pinned.append((target, host_header, host if scheme == "https" else None))
        return pinned
