"""The writer's own metrics: its batches (events, seconds to store and commit), what became of
their events, its dead letters, and how far behind the stream it is (its consumer's pending and
unacknowledged messages, polled from JetStream)."""

from __future__ import annotations

import asyncio
import logging

import nats.errors
from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge, Histogram

from core.retry import describe

LAG_POLL_SECONDS = 5.0

BATCH_EVENTS = Histogram(
    "analytics_writer_batch_events",
    "Events per batch the writer stored in one transaction",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 100_000),
)
COMMIT_SECONDS = Histogram(
    "analytics_writer_commit_seconds",
    "Seconds to store a batch: its statement and its commit",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EVENTS = Counter(
    "analytics_writer_events",
    "Events of the batches stored, by outcome: new (stored now) or duplicate (stored before)",
    ["outcome"],
)
DEAD_LETTERS = Counter(
    "analytics_writer_dead_letters",
    "Dead letters added: a message that cannot be read (kind=message) or one event that "
    "cannot be stored (kind=event)",
    ["kind"],
)
PENDING = Gauge(
    "analytics_writer_consumer_pending_messages",
    "Messages of the stream not yet delivered to the writer: its backlog",
    multiprocess_mode="mostrecent",
)
ACK_PENDING = Gauge(
    "analytics_writer_consumer_ack_pending_messages",
    "Messages delivered to the writer and not yet acknowledged: being stored, or to be redelivered",
    multiprocess_mode="mostrecent",
)

logger = logging.getLogger(__name__)


async def watch_lag(js: JetStreamContext, stream: str, durable: str) -> None:
    """Keep the consumer's gauges current until cancelled; while JetStream does not answer,
    they keep their last values."""
    while True:
        try:
            info = await js.consumer_info(stream, durable)
        except (nats.errors.Error, TimeoutError) as error:
            logger.debug("could not read the consumer's state: %s", describe(error))
        else:
            PENDING.set(info.num_pending or 0)
            ACK_PENDING.set(info.num_ack_pending or 0)
        await asyncio.sleep(LAG_POLL_SECONDS)
