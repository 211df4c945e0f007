"""Which network addresses a user-supplied URL may reach.

The fetcher asks two questions of every resolved address: is it a public unicast address, and if
not, did the operator exempt it (`allow_hosts`)? Python's `ipaddress.is_global` is not enough on its
own: on 3.11 it calls multicast, NAT64 (64:ff9b::/96) and 6to4 (2002::/16) "global" even when they
embed a loopback or private IPv4 address, so those are unwrapped and checked as the IPv4 inside.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def parse_ip(text: str) -> IPAddress | None:
    """An IP literal (IPv6 may carry brackets or a %zone) -> address; anything else -> None."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # Each of these forms makes a host stack (or a translator on the path) talk to the IPv4
    # address inside, so that address is what must be judged.
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    # IPv4-compatible (::a.b.c.d, deprecated) — still routed to the IPv4 host by some stacks.
    if int(ip) >> 32 == 0 and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip))
    return None


def is_public_ip(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return is_public_ip(inner)
        if ip in _NAT64_LOCAL or ip.is_site_local:
            return False
    elif ip in _CGNAT:
        return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


class HostAllowList:
    """The operator's exemptions: host names (exact, or `.example.com` for any subdomain),
    IP addresses and CIDR networks. Anything that parses as neither IP nor network is a name."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._names: set[str] = set()
        self._suffixes: list[str] = []
        self._networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            ip = parse_ip(entry)
            if ip is not None:
                self._networks.append(ipaddress.ip_network(ip))
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("*."):
                entry = entry[1:]
            if entry.startswith("."):
                self._suffixes.append(entry)
            else:
                self._names.add(entry.rstrip("."))

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return host in self._names or any(host.endswith(s) for s in self._suffixes)

    def allows_ip(self, ip: IPAddress) -> bool:
        for net in self._networks:
            if ip.version == net.version and ip in net:
                return True
            # an exempted IPv4 network also covers its IPv4-mapped IPv6 spelling
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                if net.version == 4 and ip.ipv4_mapped in net:
                    return True
        return False

    def __bool__(self) -> bool:
        return bool(self._names or self._suffixes or self._networks)
