"""Which notification addresses the worker may call (SSRF protection, pure).

FHIRHUB_NOTIFY_ALLOWED_HOSTS is a comma-separated allowlist of:
  loopback | private | public   address classes (public = globally routable)
  10.0.0.0/8, fd00::/8           networks (CIDR)
  hooks.example.org, *.example.org   host names (matched on the URL, before DNS)
An address is allowed when its host name is listed, or when every address it resolves to
is in an allowed class or network (so DNS cannot mix an internal address in). Link-local
addresses (169.254.169.254, cloud metadata) are only reachable through an explicit network.
Default: `loopback,public` with the embedded database (development), `public` otherwise.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fhirhub.config import Settings
from fhirhub.fhir.errors import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
CLASSES: dict[str, Callable[[IPAddress], bool]] = {
    "loopback": lambda ip: ip.is_loopback,
    # 0.0.0.0/8 counts as private in Python but reaches this host on Linux.
    "private": lambda ip: (
        ip.is_private
        and not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)
        and not (isinstance(ip, ipaddress.IPv4Address) and ip.packed[0] == 0)
    ),
    "public": lambda ip: ip.is_global,
}


class AddressNotAllowed(Exception):
    """The URL may not be called; permanent until the configuration changes."""


@dataclass(frozen=True)
class AddressPolicy:
    classes: frozenset[str]
    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> AddressPolicy:
        classes: set[str] = set()
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        suffixes: list[str] = []
        for raw in spec.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry in CLASSES:
                classes.add(entry)
            elif entry.startswith("*."):
                suffixes.append(entry[1:])
            elif "/" in entry or _is_ip(entry):
                try:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ConfigurationError(
                        f"FHIRHUB_NOTIFY_ALLOWED_HOSTS: {raw.strip()!r} is not a network"
                    ) from None
            else:
                hosts.add(entry)
        return cls(frozenset(classes), tuple(networks), frozenset(hosts), tuple(suffixes))

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        spec = settings.notify_allowed_hosts
        if not spec:
            spec = "loopback,public" if settings.uses_embedded_db else "public"
        return cls.parse(spec)

    def host_listed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self.hosts or any(host.endswith(s) for s in self.suffixes)

    def ip_allowed(self, ip: IPAddress) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.networks):
            return True
        return any(CLASSES[name](ip) for name in self.classes)

    def check_url(self, url: str) -> tuple[str, str, int]:
        """Syntax and literal-address check (no DNS): returns (scheme, host, port)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AddressNotAllowed(f"{url[:100]!r} is not an http(s) URL with a host")
        if parts.username or parts.password:
            raise AddressNotAllowed("notification URLs must not carry credentials")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise AddressNotAllowed(f"{url[:100]!r} has an invalid port") from None
        host = parts.hostname
        if _is_ip(host) and not self.host_listed(host):
            self.check_addresses(host, [host])
        return parts.scheme, host, port

    def check_addresses(self, host: str, addresses: list[str]) -> None:
        if self.host_listed(host):
            return
        if not addresses:
            raise AddressNotAllowed(f"{host} does not resolve")
        for raw in addresses:
            if not self.ip_allowed(ipaddress.ip_address(raw.split("%", 1)[0])):
                raise AddressNotAllowed(
                    f"{host} resolves to {raw}, which FHIRHUB_NOTIFY_ALLOWED_HOSTS does not allow"
                )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
