"""A client library for the analytics backend: events queued in memory, sent in batches over
gRPC IngestBatchStream, retried until the server answers for each, stored exactly once.

`Client` for threaded code, `AsyncClient` for asyncio code; see the README for the options and
guarantees.
"""

from analytics_client._proto.event_pb2 import Event
from analytics_client.aio import AsyncClient
from analytics_client.client import Client
from analytics_client.events import Rejection, Violation
from analytics_client.ids import new_event_id
from analytics_client.queue import ClientClosedError, Stats

__all__ = [
    "AsyncClient",
    "Client",
    "ClientClosedError",
    "Event",
    "Rejection",
    "Stats",
    "Violation",
    "new_event_id",
]
