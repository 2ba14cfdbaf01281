"""The writer as a running service: its connections, its schema, its consumer task, and the
upkeep of its storage (writer.storage)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from core.database import answers, create_pool
from core.migrator import migrate
from core.nats_connection import close_nats, connect_nats
from core.settings import Settings
from core.stream import ArchiveStream, DeadLetterStream, EventStream, ensure_stream
from runtime.health import Readiness
from runtime.lifecycle import until_stopping
from runtime.metrics import watch_pool
from writer.consumer import EventConsumer
from writer.dead_letters import DeadLetters
from writer.metrics import watch_lag
from writer.storage import StorageUpkeep
from writer.store import EventStore


class RunningWriter:
    def __init__(self, task: asyncio.Task[None], ready: Readiness) -> None:
        """`ready`: the writer's dependencies, each with its probe."""
        self._task = task
        self.ready = ready

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
        upkeep = StorageUpkeep(
            pool,
            retention_days=settings.raw_event_retention_days,
            event_id_window_days=settings.event_id_window_days,
        )
        keeping_up = asyncio.create_task(upkeep.keep_up(), name="the writer's storage upkeep")
        resources.callback(keeping_up.cancel)

        js = nc.jetstream()
        if settings.stream_archive_days:
            await ensure_stream(js, ArchiveStream.from_settings(settings))
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
            linger=settings.writer_linger,
        )
        stopping = asyncio.Event()
        task = asyncio.create_task(consumer.run(stopping), name="the writer's consumer")
        try:
            ready = asyncio.create_task(consumer.ready.wait())
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if task.done():
                task.result()  # it failed while starting
            if settings.metrics:
                watching = [
                    asyncio.create_task(watch_pool(pool, "writer")),
                    asyncio.create_task(
                        watch_lag(js, settings.stream_name, settings.writer_durable)
                    ),
                ]
                for watch in watching:
                    resources.callback(watch.cancel)

            async def nats_connected() -> bool:
                return nc.is_connected

            async def postgresql_answers() -> bool:
                return await answers(pool)

            yield RunningWriter(task, {"nats": nats_connected, "postgresql": postgresql_answers})
        finally:
            stopping.set()
            await task
