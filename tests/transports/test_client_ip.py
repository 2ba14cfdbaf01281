"""The client IP: X-Forwarded-For believed only from trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from transports.client_ip import TrustedProxies, client_ip, grpc_peer_ip

PROXIES = TrustedProxies.of((ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")))


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_ip("198.51.100.9", b"203.0.113.7", TrustedProxies(())) == "198.51.100.9"


def test_a_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_ip("198.51.100.9", b"203.0.113.7", PROXIES) == "198.51.100.9"


def test_a_trusted_proxy_names_the_client() -> None:
    assert client_ip("10.0.0.2", b"203.0.113.7", PROXIES) == "203.0.113.7"


def test_the_client_is_the_first_untrusted_hop_from_the_right() -> None:
    # The leftmost entry is whatever the client wrote; the proxies appended the rest.
    forwarded = b"1.2.3.4, 203.0.113.7, 10.0.0.5"

    assert client_ip("10.0.0.2", forwarded, PROXIES) == "203.0.113.7"


def test_an_entry_that_is_no_address_stops_at_the_last_trusted_hop() -> None:
    assert client_ip("10.0.0.2", b"garbage, 10.0.0.5", PROXIES) == "10.0.0.5"


def test_ipv6_clients_are_named() -> None:
    assert client_ip("fd00::1", b"2001:db8::7", PROXIES) == "2001:db8::7"


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:203.0.113.9:5555", "203.0.113.9"),
        ("ipv6:[2001:db8::1]:5555", "2001:db8::1"),
        ("ipv6:%5B::1%5D:5555", "::1"),
        ("unix:/tmp/socket", "unix:/tmp/socket"),
    ],
)
def test_the_address_of_a_grpc_peer(peer: str, address: str) -> None:
    assert grpc_peer_ip(peer) == address
