"""The address of the client behind a request: what the rate limits count, and a browser's
visitor hash and country are made of.

`X-Forwarded-For` is believed only from a proxy in TRUSTED_PROXIES: anyone else can write
anything there. From a trusted proxy, the header is read from its right end (what the nearest
proxy appended) leftwards past every trusted proxy; the first address that is not one is the
client. An entry that is not an IP address stops the walk at the last trusted hop.

Addresses are compared as integers (`socket.inet_pton`): the `ipaddress` module's objects
cost more than the rest of a browser's request (docs/benchmarks.md).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from urllib.parse import unquote

from core.settings import Network


@dataclass(frozen=True)
class TrustedProxies:
    """Networks as (family, first address, mask), both integers."""

    networks: tuple[tuple[int, int, int], ...]
    _peers: dict[str, bool] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, networks: tuple[Network, ...]) -> TrustedProxies:
        return cls(
            tuple(
                (
                    socket.AF_INET if network.version == 4 else socket.AF_INET6,
                    int(network.network_address),
                    int(network.netmask),
                )
                for network in networks
            )
        )

    def trusts_peer(self, peer: str) -> bool:
        """Whether the connection's peer is a trusted proxy: a few addresses, remembered."""
        trusted = self._peers.get(peer)
        if trusted is None:
            address = _address(peer)
            trusted = self._peers[peer] = address is not None and self.trust(address)
            if len(self._peers) > 1000:  # not proxies: clients reaching us directly
                self._peers.clear()
        return trusted

    def trust(self, address: tuple[int, int]) -> bool:
        family, number = address
        return any(
            family == net_family and number & mask == first
            for net_family, first, mask in self.networks
        )


def client_ip(peer: str, forwarded_for: bytes | None, trusted: TrustedProxies) -> str:
    """The client's IP address as text; `peer` is the connection's own."""
    if not trusted.networks or forwarded_for is None:
        return peer
    if not trusted.trusts_peer(peer):
        return peer
    client = peer
    for entry in reversed(forwarded_for.decode("latin-1").split(",")):
        text = entry.strip()
        hop = _address(text)
        if hop is None:
            break
        client = text
        if not trusted.trust(hop):
            break
    return client


def _address(text: str) -> tuple[int, int] | None:
    """(family, the address as an integer), or None for text that is no IP address."""
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return family, int.from_bytes(socket.inet_pton(family, text), "big")
    except OSError:
        return None


def grpc_peer_ip(peer: str) -> str:
    """The IP address in a gRPC peer (`ipv4:203.0.113.9:5555`, `ipv6:[::1]:5555`, which newer
    gRPC releases percent-encode); the peer as given for another kind (`unix:...`)."""
    kind, _, address = unquote(peer).partition(":")
    if kind == "ipv4":
        return address.rpartition(":")[0]
    if kind == "ipv6":
        return address.rpartition(":")[0].strip("[]")
    return peer
