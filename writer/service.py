"""The writer as a running service: its connections, its schema, its consumer task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from core.database import create_pool
from core.migrator import migrate
from core.nats_connection import close_nats, connect_nats
from core.settings import Settings
from core.stream import DeadLetterStream, EventStream
from runtime.lifecycle import until_stopping
from writer.consumer import EventConsumer
from writer.dead_letters import DeadLetters
from writer.store import EventStore


class RunningWriter:
    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    async def wait(self, stopping: asyncio.Event) -> None:
        """Return when `stopping` is set; raise if the consumer fails first."""
        await until_stopping(stopping, self._task)


@asynccontextmanager
async def running_writer(settings: Settings) -> AsyncIterator[RunningWriter]:
    """Connect, migrate and start consuming (the streams and the consumer exist when this
    yields); on exit, store and acknowledge the batch in hand, then disconnect. A consumer
    that failed meanwhile raises its error on exit, so that no caller mistakes it for one
    still storing."""
    async with AsyncExitStack() as resources:
        nc = await connect_nats(settings, "analytics-writer")
        resources.push_async_callback(close_nats, nc)
        pool = await create_pool(settings, max_size=max(4, settings.writer_concurrency))
        resources.push_async_callback(pool.close)
        await migrate(pool)

        js = nc.jetstream()
        consumer = EventConsumer(
            js,
            EventStore(pool),
            EventStream.from_settings(settings),
            DeadLetters(js, DeadLetterStream.from_settings(settings)),
            durable=settings.writer_durable,
            batch_size=settings.writer_batch_size,
            concurrency=settings.writer_concurrency,
            ack_wait=settings.writer_ack_wait,
            max_deliveries=settings.writer_max_deliveries,
        )
        stopping = asyncio.Event()
        task = asyncio.create_task(consumer.run(stopping), name="the writer's consumer")
        try:
            ready = asyncio.create_task(consumer.ready.wait())
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if task.done():
                task.result()  # it failed while starting
            yield RunningWriter(task)
        finally:
            stopping.set()
            await task
