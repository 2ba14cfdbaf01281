"""Whether the API's ports are free, asked before anything starts: a port another server holds
is then refused with the variable to change, instead of a traceback once the NATS and
PostgreSQL connections are up, or, behind `make run`, a banner announcing the other server."""

from __future__ import annotations

import socket

from core.settings import Address, Settings


def claimable_port(address: Address) -> int:
    """The port a server can listen on at `address` (port 0 becomes a real one); OSError when
    another server holds it. Bound without SO_REUSEPORT, so that a port some other server
    (another instance of ours included) serves is refused, not shared."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((address.host, address.port))
        port: int = probe.getsockname()[1]
        return port


def listen_refusal(settings: Settings) -> str | None:
    """Why the API cannot listen where `settings` say, naming the variable to change; None
    when both of its addresses are free."""
    for variable, address in (
        ("GRPC_LISTEN", settings.grpc_listen),
        ("HTTP_LISTEN", settings.http_listen),
    ):
        try:
            claimable_port(address)
        except OSError as error:
            return (
                f"cannot listen on {address} ({variable}): {error.strerror}; "
                f"set {variable} to a free address"
            )
    return None
