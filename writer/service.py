"""The writer as a running service: its connections, its schema, its consumer task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from stack.config import Settings
from stack.connections import close_nats, connect_nats, create_pool
from stack.stream import EventStream, ensure_stream
from writer.consumer import EventConsumer
from writer.schema import migrate
from writer.store import EventStore


class RunningWriter:
    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    async def wait(self, stopping: asyncio.Event) -> None:
        """Return when `stopping` is set; raise if the consumer fails first."""
        stop = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({stop, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if self._task.done():
            self._task.result()


@asynccontextmanager
async def running_writer(settings: Settings) -> AsyncIterator[RunningWriter]:
    """Connect, migrate and consume; on exit, store and acknowledge the batch in hand, then
    disconnect."""
    async with AsyncExitStack() as resources:
        nc = await connect_nats(settings, "analytics-writer")
        resources.push_async_callback(close_nats, nc)
        pool = await create_pool(settings, max_size=4)
        resources.push_async_callback(pool.close)
        await migrate(pool)

        js = nc.jetstream()
        stream = EventStream.from_settings(settings)
        await ensure_stream(js, stream)
        consumer = EventConsumer(
            js,
            EventStore(pool),
            stream,
            durable=settings.writer_durable,
            batch_size=settings.writer_batch_size,
            ack_wait=settings.writer_ack_wait,
        )
        stopping = asyncio.Event()
        task = asyncio.create_task(consumer.run(stopping), name="writer-consumer")
        try:
            yield RunningWriter(task)
        finally:
            stopping.set()
            await asyncio.gather(task, return_exceptions=True)
