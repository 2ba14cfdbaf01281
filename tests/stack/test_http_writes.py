"""Responses in one write: what the HTTP protocol's transport hands to the socket."""

from __future__ import annotations

import asyncio

from stack.http_writes import _JoiningTransport


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
