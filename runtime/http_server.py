"""uvicorn serving an ASGI application on a socket of ours, started and stopped by the runtime
rather than by uvicorn's own signal handling."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from core.settings import Address
from runtime.tls import ServerCertificate
from transports.http_app import ASGIApp
from transports.http_bounds import bounded_protocol

GRACE_SECONDS = 5.0


def listening_socket(listen: Address, *, share_port: bool) -> socket.socket:
    """A TCP socket for uvicorn. Made with proto=IPPROTO_TCP, as asyncio's own are: asyncio
    sets TCP_NODELAY only on connections of such sockets, and without it a keep-alive client
    waits ~40 ms for every response (Nagle's algorithm meeting delayed ACKs)."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((listen.host, listen.port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class _UvicornServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # signals belong to runtime.lifecycle, which stops us through should_exit


class HttpServer:
    def __init__(
        self,
        app: ASGIApp,
        busy_app: ASGIApp,
        listen: Address,
        *,
        share_port: bool,
        read_timeout: float,
        max_connections: int,
        certificate: ServerCertificate | None = None,
    ) -> None:
        """Serve `app`, and `busy_app` on the connections over `max_connections`; over TLS
        with `certificate`."""
        self._socket = listening_socket(listen, share_port=share_port)
        self._server = _UvicornServer(
            uvicorn.Config(
                app,
                http=bounded_protocol(read_timeout, max_connections, busy_app),
                ws="none",  # no WebSocket is served: no connection is handed to another protocol
                lifespan="off",
                log_config=None,
                access_log=False,
                server_header=False,
                proxy_headers=False,  # we read no client addresses
                timeout_graceful_shutdown=int(GRACE_SECONDS),
                ssl_certfile=certificate.cert_file if certificate else None,
                ssl_keyfile=certificate.key_file if certificate else None,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Start serving; the bound port."""
        self._task = task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if task.done():
                self._socket.close()
                task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.005)
        port: int = self._socket.getsockname()[1]
        return port

    async def finished(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._socket.close()
