"""uvicorn's HTTP protocol within bounds on slow and greedy clients.

uvicorn waits for a request for as long as its client takes: a client that trickles the head
or the body of its request, or connects and sends nothing, holds its connection (and what it
sent so far) for ever. Here a connection must deliver each request whole within a read
timeout, counted from connecting for its first request and from its first bytes for the next
ones (between requests, uvicorn's keep-alive timeout closes an idle connection). A request
still incomplete then is answered 408 and its connection closed. The protocol writes that
answer itself, without CORS headers: a head not received whole names no origin.

A connection opened while the server holds as many as it may is served by another application,
which answers each request 503 and closes the connection; the connections already open are
served as before. (uvicorn's own `limit_concurrency` answers in plain text, without
Retry-After or CORS, and refuses every request, on every connection, while as many
connections are open, idle ones included.)

Most requests arrive whole in the read that brings their first bytes, and get no timer: only
a request still incomplete at the end of that read does, so the bound costs nothing per
request (a timer per request cost several microseconds of `POST /event`).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from transports.http_app import ASGIApp, RequestTimeout, closing_response
from transports.http_writes import OneWriteHttpToolsProtocol


def bounded_protocol(
    read_timeout: float, max_connections: int, busy: ASGIApp
) -> type[BoundedHttpToolsProtocol]:
    """The protocol class of a server with these bounds (uvicorn makes one protocol per
    connection): `read_timeout` in seconds, and `busy` the application that serves the
    connections over `max_connections`."""

    class Bounded(BoundedHttpToolsProtocol):
        pass

    Bounded.read_timeout = read_timeout
    Bounded.max_connections = max_connections
    Bounded.busy = busy
    Bounded.timed_out = closing_response(
        RequestTimeout(f"the request was not received whole within {read_timeout:g} seconds")
    )
    return Bounded


class BoundedHttpToolsProtocol(OneWriteHttpToolsProtocol):
    read_timeout: ClassVar[float]
    timed_out: ClassVar[bytes]  # the 408 answer
    max_connections: ClassVar[int]
    busy: ASGIApp  # set on the class, like the others

    _read_deadline: asyncio.TimerHandle | None = None
    _mid_request = False  # a request's first bytes are in, its last not yet

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.app = self.busy  # what uvicorn starts for each request of the connection
        self._read_deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._mid_request and self._read_deadline is None:
            self._read_deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._mid_request = True

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._mid_request = False
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._disarm()

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.transport.is_closing():
            return
        # A 408 would break into an answer already under way: then the connection just closes.
        if not self._answering():
            self.transport.write(self.timed_out)
        # The application, if it is waiting for the rest of the body, hears of a disconnect,
        # and what it answers then is dropped.
        self.transport.close()

    def _answering(self) -> bool:
        """Whether an answer, to this request or an earlier one, is under way."""
        cycle = self.cycle
        if cycle is None:
            return False
        if cycle.scope is self.scope:  # this request's head is in
            return cycle.response_started or bool(self.pipeline)
        return not cycle.response_complete
