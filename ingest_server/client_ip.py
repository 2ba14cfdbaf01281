"""The address of the browser behind a request.

`X-Forwarded-For` is believed only from a proxy in TRUSTED_PROXIES: anyone else can write
anything there. From a trusted proxy, the header is read from its right end (what the nearest
proxy appended) leftwards past every trusted proxy; the first address that is not one is the
client. An entry that is not an IP address stops the walk at the last trusted hop.
"""

from __future__ import annotations

import ipaddress

from core.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_ip(peer: str, forwarded_for: bytes | None, trusted: tuple[Network, ...]) -> str:
    """The client's IP address as text; `peer` is the connection's own."""
    if not trusted or forwarded_for is None:
        return peer
    address = _address(peer)
    if address is None or not _trusted(address, trusted):
        return peer
    for entry in reversed(forwarded_for.decode("latin-1").split(",")):
        hop = _address(entry.strip())
        if hop is None:
            break
        address = hop
        if not _trusted(hop, trusted):
            break
    return str(address)


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: Address, trusted: tuple[Network, ...]) -> bool:
    return any(address in network for network in trusted)
