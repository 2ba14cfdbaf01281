"""analytics.v1.IngestService over gRPC: wire messages in, Ingestor calls, wire messages out."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable
from typing import Any

from analytics.v1 import ingest_pb2, ingest_pb2_grpc
from analytics.v1.event_pb2 import Event
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from core.access import IngestAccess
from core.errors import FieldViolation, InvalidArgument, LimitReached, ServiceError
from core.events import batch_size_violations
from ingest_server.access import IngestGate
from ingest_server.ingestor import BatchOutcome, Ingestor, Outcome
from transports.credentials import grpc_secret
from transports.grpc_errors import Context, translate_errors, translate_stream_errors

# IngestStream publishes events in chunks of this many as they arrive, and details at most
# this many rejections in its answer (counting them all).
STREAM_CHUNK_EVENTS = 500
MAX_DETAILED_REJECTIONS = 1000
# Requests of one IngestBatchStream being stored or answered at once; the stream is read no
# further until the oldest is answered, which holds back the client through gRPC's flow
# control.
STREAM_BATCHES_IN_FLIGHT = 8

# What IngestBatchStream answers a request with, in order: its BatchOutcome once stored, the error
# that ends the stream, or None after the last request.
_Answer = asyncio.Task[BatchOutcome] | ServiceError | None


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(
        self,
        ingestor: Ingestor,
        gate: IngestGate,
        stream_max_events: int,
        stream_max_seconds: float,
    ) -> None:
        """`gate`: what a call's credential (its `authorization` metadata) allows;
        `stream_max_events`: events an IngestStream reads; `stream_max_seconds`: how long
        it, or an IngestBatchStream, reads."""
        self._ingestor = ingestor
        self._gate = gate
        self._stream_max_events = stream_max_events
        self._stream_max_seconds = stream_max_seconds

    @translate_errors
    async def Ingest(
        self, request: ingest_pb2.IngestRequest, context: Context
    ) -> ingest_pb2.IngestResponse:
        access = self._access(context)
        if not request.HasField("event"):
            raise InvalidArgument.single("event", "is required")
        try:
            event_id = await self._ingestor.ingest(request.event, access=access)
        except InvalidArgument as error:
            raise InvalidArgument(
                [FieldViolation(f"event.{v.field}", v.description) for v in error.violations]
            ) from None
        return ingest_pb2.IngestResponse(event_id=event_id)

    @translate_errors
    async def IngestBatch(
        self, request: ingest_pb2.IngestBatchRequest, context: Context
    ) -> ingest_pb2.IngestBatchResponse:
        access = self._access(context)
        return _batch_response(await self._ingestor.ingest_batch(request.events, access=access))

    @translate_errors
    async def IngestStream(
        self, request_iterator: AsyncIterator[Event | InvalidArgument], context: Context
    ) -> ingest_pb2.IngestStreamResponse:
        access = self._access(context)
        accepted = rejected = 0
        details: list[Outcome] = []
        chunk: list[Event | InvalidArgument] = []
        seen = 0

        async def flush() -> None:
            nonlocal accepted, rejected
            outcome = await self._ingestor.ingest_batch(
                chunk, first_index=seen - len(chunk), access=access
            )
            accepted += outcome.accepted_count
            rejected += outcome.rejected_count
            details.extend(
                itertools.islice(outcome.rejected(), MAX_DETAILED_REJECTIONS - len(details))
            )
            chunk.clear()

        # The stream is read up to its bounds; what was read before is stored and answered as
        # usual, and the answer says which bound ended it (a status error would lose the
        # counts, and with them where the client is to resume).
        limit_reached = ""
        deadline = asyncio.get_running_loop().time() + self._stream_max_seconds
        reading = asyncio.timeout_at(deadline)
        try:
            async with reading:
                async for event in request_iterator:
                    if seen == self._stream_max_events:
                        limit_reached = f"at most {seen} events per stream"
                        break
                    chunk.append(event)
                    seen += 1
                    if len(chunk) == STREAM_CHUNK_EVENTS:
                        # Only the reading is bounded in time: what was read is stored whole.
                        reading.reschedule(None)
                        await flush()
                        reading.reschedule(deadline)
        except TimeoutError:
            if not reading.expired():
                raise
            limit_reached = f"at most {self._stream_max_seconds:g} seconds per stream"
        if chunk:
            await flush()
        response = ingest_pb2.IngestStreamResponse(
            accepted_count=accepted, rejected_count=rejected, limit_reached=limit_reached
        )
        _add_results(response.rejected, details)
        return response

    @translate_stream_errors
    async def IngestBatchStream(
        self,
        requests: AsyncIterator[ingest_pb2.IngestBatchRequest | InvalidArgument],
        context: Context,
    ) -> AsyncIterator[ingest_pb2.IngestBatchResponse]:
        access = self._access(context)
        answers: asyncio.Queue[_Answer] = asyncio.Queue()
        in_flight = asyncio.Semaphore(STREAM_BATCHES_IN_FLIGHT)
        reader = asyncio.create_task(self._start_batches(requests, answers, in_flight, access))
        reader.add_done_callback(_retrieve)
        try:
            while (answer := await answers.get()) is not None:
                if isinstance(answer, ServiceError):
                    raise answer
                yield _batch_response(await answer)
                in_flight.release()
            await reader  # its error, if reading the requests failed
        finally:
            reader.cancel()
            while not answers.empty():
                if isinstance(unanswered := answers.get_nowait(), asyncio.Task):
                    unanswered.cancel()
                    unanswered.add_done_callback(_retrieve)

    async def _start_batches(
        self,
        requests: AsyncIterator[ingest_pb2.IngestBatchRequest | InvalidArgument],
        answers: asyncio.Queue[_Answer],
        in_flight: asyncio.Semaphore,
        access: IngestAccess,
    ) -> None:
        """Start storing each request as it is read, up to STREAM_BATCHES_IN_FLIGHT at once, for
        as long as the stream may stay open. A bad request is answered with its error, and
        nothing after it is read or stored; so is the end of that time."""
        try:
            async with asyncio.timeout(self._stream_max_seconds):
                async for request in requests:
                    await in_flight.acquire()
                    if isinstance(request, InvalidArgument):
                        answers.put_nowait(request)
                        return
                    if violations := batch_size_violations(len(request.events)):
                        answers.put_nowait(InvalidArgument(violations))
                        return
                    answers.put_nowait(
                        asyncio.create_task(
                            self._ingestor.ingest_batch(request.events, access=access)
                        )
                    )
        except TimeoutError:
            answers.put_nowait(
                LimitReached(
                    f"a stream stays open at most {self._stream_max_seconds:g} seconds; the "
                    "requests answered were stored, and none after them was: send those in a "
                    "new stream"
                )
            )
        finally:
            answers.put_nowait(None)

    def _access(self, context: Context) -> IngestAccess:
        """What the call may send; Unauthenticated at once for a wrong or revoked credential."""
        return self._gate.access(grpc_secret(context), browser=False)


def _batch_response(outcome: BatchOutcome) -> ingest_pb2.IngestBatchResponse:
    response = ingest_pb2.IngestBatchResponse(
        accepted_count=outcome.accepted_count, rejected_count=outcome.rejected_count
    )
    if outcome.rejections:
        _add_results(response.results, outcome.outcomes())
    else:
        add = response.results.add
        for index, event_id in enumerate(outcome.event_ids, start=outcome.first_index):
            add(index=index, event_id=event_id)
    return response


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A task nobody awaits (an unanswered request's, or the reader's once the stream has
    failed otherwise): its error is not worth a log line."""
    if not task.cancelled():
        task.exception()


def _add_results(
    results: RepeatedCompositeFieldContainer[ingest_pb2.EventResult], outcomes: Iterable[Outcome]
) -> None:
    """Fill the response's results in place: building them apart and copying them in took
    7 % of IngestBatch's CPU."""
    for outcome in outcomes:
        result = results.add(index=outcome.index, event_id=outcome.event_id)
        for violation in outcome.violations:
            result.violations.add(field=violation.field, description=violation.description)
