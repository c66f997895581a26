"""Which addresses woosync connects to as a store (docs/contract.md section 10, "Store addresses").

A store URL comes from whoever starts a sync, so it could point woosync at its own network:
the database, the broker, a cloud's metadata service, a cluster's API. By default only public
addresses are stores; `WOOSYNC_STORE_ALLOWED_NETWORKS` opens the ranges an operator trusts.
Cloud metadata endpoints stay closed whatever is allowed: no store lives there, and what they
answer (instance credentials) is the prize of server-side request forgery.

The policy is pure: it judges one IP address. `shared.woocommerce.transport` applies it to every
address a store's host resolves to, when the connection is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address

ALLOWED_NETWORKS_VARIABLE = "WOOSYNC_STORE_ALLOWED_NETWORKS"

# Never a store, whatever is allowed: instance metadata and credentials services (AWS EC2 and
# ECS, GCP, Azure and OpenStack use 169.254.169.254; Alibaba Cloud 100.100.100.200).
_METADATA = tuple(
    ip_network(cidr) for cidr in ("169.254.169.254/32", "169.254.170.2/32", "fd00:ec2::254/128", "100.100.100.200/32")
)
# Host names that lead to a metadata service through the cloud's own DNS.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})

# (range, what it is), most specific first. Ranges from the IANA special-purpose registries
# (RFC 6890 and its updates); the last rule refuses what they list and this table does not name.
_RULES: tuple[tuple[Network, str], ...] = tuple(
    (ip_network(cidr), what)
    for cidr, what in (
        ("0.0.0.0/8", "the unspecified (this host) network"),
        ("127.0.0.0/8", "the loopback network"),
        ("10.0.0.0/8", "a private network"),
        ("172.16.0.0/12", "a private network"),
        ("192.168.0.0/16", "a private network"),
        ("169.254.0.0/16", "a link-local network"),
        ("100.64.0.0/10", "the carrier-grade NAT shared network"),
        ("192.0.0.0/24", "the IETF protocol assignments network"),
        ("192.0.2.0/24", "a documentation network"),
        ("198.51.100.0/24", "a documentation network"),
        ("203.0.113.0/24", "a documentation network"),
        ("198.18.0.0/15", "the benchmarking network"),
        ("224.0.0.0/4", "the multicast network"),
        ("240.0.0.0/4", "a reserved network"),
        ("::/128", "the unspecified address"),
        ("::1/128", "the loopback network"),
        ("fc00::/7", "a private network"),
        ("fe80::/10", "a link-local network"),
        ("fec0::/10", "a private network"),
        ("ff00::/8", "the multicast network"),
        ("64:ff9b:1::/48", "a local-use NAT64 network"),
        ("2001::/32", "the Teredo tunnelling network"),
        ("2001:db8::/32", "a documentation network"),
        ("100::/64", "the discard-only network"),
        ("::/96", "the deprecated IPv4-compatible network"),
    )
)
# IPv6 ranges that carry an IPv4 address: judged by the IPv4 address they reach.
_IPV4_MAPPED = ip_network("::ffff:0:0/96")
_NAT64 = ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ip_network("2002::/16")


@dataclass(frozen=True)
class StoreAddressPolicy:
    """Refuses non-public addresses except those in `allowed`."""

    allowed: tuple[Network, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[Network | str]) -> StoreAddressPolicy:
        return cls(tuple(ip_network(n) if isinstance(n, str) else n for n in networks))

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why woosync does not connect to `address`, as a sentence; None when it may."""
        ip = ip_address(address) if isinstance(address, str) else address
        reached = _ipv4_inside(ip)
        judged = (ip,) if reached is None else (ip, reached)
        for candidate in judged:
            for network in _METADATA:
                if candidate.version == network.version and candidate in network:
                    return f"store address {address} is a cloud metadata endpoint: woosync never connects to one"
        if any(candidate.version == net.version and candidate in net for candidate in judged for net in self.allowed):
            return None
        rule = _rule_for(reached if reached is not None else ip)
        if rule is None:
            return None
        what, network = rule
        return f"store address {address} is in {what} ({network}); set {ALLOWED_NETWORKS_VARIABLE} to allow it"

    def host_refusal(self, host: str) -> str | None:
        """Why woosync does not connect to a host name, before any DNS; None when it may try."""
        name = host.rstrip(".").lower()
        if name in METADATA_HOSTS:
            return f"store host {name} is a cloud metadata endpoint: woosync never connects to one"
        return None


def _ipv4_inside(ip: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 address reaches (mapped, NAT64 or 6to4), if it is one of those."""
    if isinstance(ip, IPv4Address):
        return None
    if ip in _IPV4_MAPPED or ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def _rule_for(ip: IPAddress) -> tuple[str, Network | str] | None:
    for network, what in _RULES:
        if ip.version == network.version and ip in network:
            return what, network
    if not ip.is_global:
        return "a special-purpose network", "not globally routable"
    return None


def parse_networks(text: str) -> tuple[Network, ...]:
    """`"127.0.0.0/8, ::1/128"` -> networks; a bare address is a network of one. Raises
    ValueError naming the entry that is not a network in CIDR notation."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not a network in CIDR notation such as 10.20.0.0/16 ({exc})") from None
    return tuple(networks)
