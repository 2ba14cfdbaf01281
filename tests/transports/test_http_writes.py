"""Responses in one write: what the HTTP protocol's transport hands to the socket."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from tests.support.waiting import eventually
from transports.http_writes import OneWriteHttpToolsProtocol, _JoiningTransport


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


async def test_the_writes_of_one_loop_turn_reach_the_socket_as_one() -> None:
    socket = RecordingTransport()
    joining = _JoiningTransport(socket)

    joining.write(b"HTTP/1.1 202 Accepted\r\n\r\n")
    joining.write(b'{"status":"accepted"}')
    await asyncio.sleep(0)

    assert socket.calls == [("write", b'HTTP/1.1 202 Accepted\r\n\r\n{"status":"accepted"}')]


async def test_closing_sends_what_was_written_first() -> None:
    socket = RecordingTransport()
    joining = _JoiningTransport(socket)

    joining.write(b"bye")
    joining.close()
    await asyncio.sleep(0)

    assert socket.calls == [("write", b"bye"), ("close", b"")]


async def test_pending_writes_count_in_the_write_buffer_size() -> None:
    joining = _JoiningTransport(RecordingTransport())

    joining.write(b"12345")

    assert joining.get_write_buffer_size() == 5


async def test_uvicorns_httptools_protocol_sends_a_whole_response_in_one_write() -> None:
    # OneWriteHttpToolsProtocol relies on uvicorn's private httptools_impl: the protocol keeps
    # the transport that connection_made hands it and writes the head and the body to it. A
    # uvicorn that stops doing so fails here (pyproject pins its upper bound until checked).
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"21")]
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"status":"accepted"}'})

    config = uvicorn.Config(app, lifespan="off", log_config=None, server_header=False)
    protocol = OneWriteHttpToolsProtocol(config, ServerState(), app_state={})
    socket = RecordingTransport()
    protocol.connection_made(socket)

    protocol.data_received(b"POST /event HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
    await eventually(lambda: _writes(socket), 1)
    await asyncio.sleep(0.01)  # time for any later write to show up

    assert len(socket.calls) == 1
    kind, data = socket.calls[0]
    assert kind == "write"
    assert data.startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert data.endswith(b'\r\n\r\n{"status":"accepted"}')


async def _writes(transport: RecordingTransport) -> int:
    return len(transport.calls)
