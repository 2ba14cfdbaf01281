"""The client for asyncio code: no thread; it sends from a task in the event loop it is first
used in.

Fork: an AsyncClient that has not sent yet (made at import, say, before a server forks its
workers) starts afresh in the child, with an empty queue. One that had connected cannot be
used in the child: gRPC does not work in a child forked while its parent has a channel open,
and an event loop is not carried across fork; it raises there rather than hang.

Exit: close() needs the event loop, which is gone by the time atexit runs; so the exit hook
sends what a client still holds from a new event loop and a new channel, for up to
exit_timeout seconds, and says how many it could not.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType

import grpc

from analytics_client._proto.event_pb2 import Event
from analytics_client.events import new_event
from analytics_client.options import Options, RejectionHandler, WhenFull
from analytics_client.queue import EventQueue, Stats
from analytics_client.sender import Sender

logger = logging.getLogger("analytics_client")


class AsyncClient:
    """Sends events to the analytics backend's IngestService from asyncio code; the same
    options and counters as Client, its methods coroutines."""

    def __init__(
        self,
        target: str,
        *,
        max_queue: int = 10_000,
        when_full: WhenFull = "drop",
        block_timeout: float | None = None,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        request_timeout: float = 30.0,
        exit_timeout: float = 5.0,
        tls: bool | grpc.ChannelCredentials = False,
        api_key: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        on_rejected: RejectionHandler | None = None,
    ) -> None:
        self._options = Options(
            target,
            max_queue=max_queue,
            when_full=when_full,
            block_timeout=block_timeout,
            batch_size=batch_size,
            flush_interval=flush_interval,
            request_timeout=request_timeout,
            exit_timeout=exit_timeout,
            tls=tls,
            api_key=api_key,
            metadata=tuple(metadata),
            on_rejected=on_rejected,
        )
        self._queue = self._new_queue()
        self._changed = asyncio.Event()  # events left the queue, or it closed
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._forked_while_connected = False
        _clients.add(self)

    def _new_queue(self) -> EventQueue:
        queue = EventQueue(self._options.max_queue, self._options.batch_size)
        queue.on_change = self._on_change
        return queue

    def _on_change(self) -> None:
        self._changed.set()

    async def track(
        self,
        site_id: str,
        event_type: str,
        path: str,
        *,
        user_id: str | None = None,
        timestamp: datetime | None = None,
        properties: Mapping[str, str] | None = None,
        referrer: str | None = None,
        event_id: str | None = None,
    ) -> str | None:
        """Queue an event; its event_id (minted here, a UUIDv7, unless given), or None if the
        queue was full and it was dropped. With when_full="block", waits for room first (up
        to block_timeout). Raises ClientClosedError after close(); TypeError or ValueError
        for arguments no event could carry (a naive datetime, a non-string property)."""
        event, size = new_event(
            site_id,
            event_type,
            path,
            user_id=user_id,
            timestamp=timestamp,
            properties=properties,
            referrer=referrer,
            event_id=event_id,
        )
        self._start()
        if self._options.when_full == "drop":
            added = self._queue.put(event, size)
        else:
            added = await self._put_waiting(event, size)
        return event.event_id if added else None

    # A bound the method keeps itself, as Client's does; a caller's asyncio.timeout would
    # cancel close() halfway instead of letting it count and log what it gives up.
    async def flush(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        """Send every event tracked so far without waiting to fill batches, and wait up to
        `timeout` seconds until the server has answered for all of them; whether it has."""
        target = self._queue.request_flush()
        return await self._settled(target, timeout)

    async def close(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        """Take no more events, send those held, and stop, within about `timeout` seconds;
        whether every event was answered. Those that were not are counted `abandoned` and
        logged. Closing again does nothing."""
        if self._queue.closed:
            return self._queue.stats().queued == 0
        target = self._queue.close()
        answered = await self._settled(target, timeout)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        _clients.discard(self)
        abandoned = self._queue.abandon()
        if abandoned:
            logger.warning(
                "closed with %d events unanswered after %g s: abandoned (those sent may have "
                "been stored)",
                abandoned,
                timeout,
            )
        return answered and not abandoned

    @property
    def stats(self) -> Stats:
        """What became of the events so far."""
        return self._queue.stats()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _start(self) -> None:
        """Start sending from the running loop, unless already sending from it."""
        if self._forked_while_connected:
            raise RuntimeError(
                "this AsyncClient had a gRPC channel open when the process forked, and gRPC "
                "does not work in such a child: make the client in the child, or fork before "
                "its first event"
            )
        if self._queue.closed or (self._task is not None and not self._task.done()):
            return
        loop = asyncio.get_running_loop()
        channel = self._options.open_channel()
        sender = Sender(self._queue, channel, self._options)
        self._queue.wake = sender.wake
        self._loop = loop
        self._task = loop.create_task(self._send(sender, channel))

    async def _send(self, sender: Sender, channel: grpc.aio.Channel) -> None:
        try:
            await sender.run()
        finally:
            await channel.close()

    async def _put_waiting(self, event: Event, size: int) -> bool:
        """Put the event once there is room, waiting up to block_timeout; False, and counted
        dropped, if none came."""
        try:
            async with asyncio.timeout(self._options.block_timeout):
                while True:
                    self._changed.clear()
                    if self._queue.put(event, size, count_drop=False):
                        return True
                    await self._changed.wait()
        except TimeoutError:
            self._queue.count_dropped()
            return False

    async def _settled(self, target: int, within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while True:
                    self._changed.clear()
                    if self._queue.settled_through(target):
                        return True
                    await self._changed.wait()
        return False

    def _close_at_exit(self) -> None:
        held = self._queue.stats().queued
        if not held or self._queue.closed:
            return
        loop = self._loop
        if loop is not None and loop.is_running():
            logger.warning(
                "%d events unsent at exit: their AsyncClient's event loop still runs; close "
                "the client (await client.close()) before the program ends",
                held,
            )
            return
        logger.info("sending %d events before exit (up to %g s)", held, self._options.exit_timeout)
        asyncio.run(self._close_in_new_loop())

    async def _close_in_new_loop(self) -> None:
        self._changed = asyncio.Event()
        self._task = None
        self._start()
        await self.close(self._options.exit_timeout)

    def _after_fork_in_child(self) -> None:
        if self._task is not None:
            self._forked_while_connected = True
            return
        closed = self._queue.closed
        self._queue = self._new_queue()
        self._changed = asyncio.Event()
        if closed:
            self._queue.close()


# Every client not yet closed, for the exit hook.
_clients: set[AsyncClient] = set()


def _close_at_exit() -> None:
    for client in list(_clients):
        client._close_at_exit()


def _after_fork_in_child() -> None:
    for client in list(_clients):
        client._after_fork_in_child()


atexit.register(_close_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
