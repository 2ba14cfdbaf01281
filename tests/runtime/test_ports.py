"""runtime.ports: the API's addresses checked before anything starts."""

from __future__ import annotations

import pytest

from core.settings import Address, Settings
from devstack.embedded import free_port
from runtime.ports import claimable_port, listen_refusal


def test_port_zero_is_claimed_as_a_real_port() -> None:
    assert claimable_port(Address("127.0.0.1", 0)) > 0


def test_a_port_another_server_listens_on_cannot_be_claimed(held_port: int) -> None:
    with pytest.raises(OSError, match="Address already in use"):
        claimable_port(Address("127.0.0.1", held_port))


def test_free_addresses_are_not_refused() -> None:
    settings = Settings(
        grpc_listen=Address("127.0.0.1", free_port()),
        http_listen=Address("127.0.0.1", free_port()),
    )

    assert listen_refusal(settings) is None


def test_a_held_http_port_is_refused_naming_http_listen(held_port: int) -> None:
    settings = Settings(
        grpc_listen=Address("127.0.0.1", free_port()),
        http_listen=Address("127.0.0.1", held_port),
    )

    assert listen_refusal(settings) == (
        f"cannot listen on 127.0.0.1:{held_port} (HTTP_LISTEN): Address already in use; "
        "set HTTP_LISTEN to a free address"
    )


def test_a_held_grpc_port_is_refused_naming_grpc_listen(held_port: int) -> None:
    settings = Settings(
        grpc_listen=Address("127.0.0.1", held_port),
        http_listen=Address("127.0.0.1", free_port()),
    )

    assert listen_refusal(settings) == (
        f"cannot listen on 127.0.0.1:{held_port} (GRPC_LISTEN): Address already in use; "
        "set GRPC_LISTEN to a free address"
    )
