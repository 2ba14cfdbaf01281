"""Sending a queue's events over IngestBatchStream: batches written as they fall due, a few at
once; answers read in order, each settling the oldest request; what a failed stream left
unanswered sent again, on a new stream, after the wait the server asked for or a backoff.

Every event carries an event_id minted by the client, so a request sent again after its answer
was lost (an outage, a connection closed under the call) is stored once all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from analytics_client._proto.ingest_pb2 import IngestBatchRequest, IngestBatchResponse
from analytics_client._proto.ingest_pb2_grpc import IngestServiceStub
from analytics_client.events import Rejection, Violation
from analytics_client.options import Options, report_rejection
from analytics_client.queue import Batch, EventQueue
from analytics_client.retry import RETRYABLE, Backoff, violations

if TYPE_CHECKING:  # the asynchronous stub's type is declared only in the .pyi
    from analytics_client._proto.ingest_pb2_grpc import IngestServiceAsyncStub

logger = logging.getLogger("analytics_client")

# Requests of one stream awaiting their answers; the server works on up to 8 of a stream at
# once, and a few keep it busy while the client needs no more memory than the queue's bound.
MAX_IN_FLIGHT = 4
# A stream with nothing to send or await for this long is closed, so an idle client holds no
# call open (the server would end it at INGEST_STREAM_MAX_SECONDS anyway).
STREAM_IDLE_SECONDS = 5.0


@dataclass(eq=False, slots=True)
class _Sent:
    batch: Batch
    deadline: float  # loop time by which its answer is due


@dataclass(slots=True)
class _StreamEnd:
    """How a stream ended: its error, whether a request went unanswered past its deadline,
    and how many requests it answered."""

    error: grpc.aio.AioRpcError | None = None
    timed_out: bool = False
    answered: int = 0
    last_activity: float = 0.0


class Sender:
    def __init__(self, queue: EventQueue, channel: grpc.aio.Channel, options: Options) -> None:
        self._queue = queue
        self._stub: IngestServiceAsyncStub = IngestServiceStub(channel)
        self._options = options
        self._metadata = options.call_metadata()
        self._ready = asyncio.Event()  # something changed: events put, an answer, a stream end
        self._backoff = Backoff()
        self._failed_streams = 0  # in a row, for the logs

    def wake(self) -> None:
        """Have the sender look at the queue again (call it in the sender's loop)."""
        self._ready.set()

    async def run(self) -> None:
        """Send until cancelled; what is unanswered then goes back to the queue."""
        while True:
            await self._until_due()
            end = await self._stream()
            if end.error is None and not end.timed_out:
                self._backoff = Backoff()
                continue
            await asyncio.sleep(self._retry_delay(end))

    async def _until_due(self) -> None:
        while True:
            self._ready.clear()
            due = self._queue.due_in(self._options.flush_interval)
            if due == 0:
                return
            await self._wait(due)

    async def _wait(self, within: float | None) -> None:
        """Until woken, or `within` seconds (None: until woken)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._ready.wait()

    async def _stream(self) -> _StreamEnd:
        """One IngestBatchStream, for as long as it has work and works."""
        loop = asyncio.get_running_loop()
        end = _StreamEnd(last_activity=loop.time())
        unanswered: deque[_Sent] = deque()
        call = self._stub.IngestBatchStream(metadata=self._metadata)
        reader = asyncio.create_task(self._read(call, unanswered, end))
        try:
            await self._write(call, unanswered, reader, end)
            if not end.timed_out and not reader.done():
                with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    await call.done_writing()
                await self._await_answers(unanswered, reader, end)
            return end
        finally:
            if not reader.done():
                call.cancel()
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if unanswered and end.error is not None and end.error.code() not in RETRYABLE:
                # The server refused the oldest request it had not answered, and read none
                # after it.
                self._refuse(unanswered.popleft().batch, end.error)
            self._queue.requeue([sent.batch for sent in unanswered])

    async def _write(
        self,
        call: grpc.aio.StreamStreamCall[IngestBatchRequest, IngestBatchResponse],
        unanswered: deque[_Sent],
        reader: asyncio.Task[None],
        end: _StreamEnd,
    ) -> None:
        """Write batches as they fall due until the stream idles, ends, or leaves a request
        unanswered past its deadline."""
        loop = asyncio.get_running_loop()
        while not reader.done():
            self._ready.clear()
            now = loop.time()
            if unanswered and now >= unanswered[0].deadline:
                end.timed_out = True
                return
            due = (
                self._queue.due_in(self._options.flush_interval)
                if len(unanswered) < MAX_IN_FLIGHT
                else None
            )
            if due == 0 and (batch := self._queue.take()) is not None:
                unanswered.append(_Sent(batch, now + self._options.request_timeout))
                if batch.sends:
                    self._queue.count_retried(len(batch.events))
                batch.sends += 1
                end.last_activity = now
                try:
                    # Flow control holds a write while the server reads no more: a server that
                    # stopped answering must not hold it longer than its oldest request's due.
                    async with asyncio.timeout_at(unanswered[0].deadline):
                        await call.write(IngestBatchRequest(events=batch.events))
                except TimeoutError:
                    end.timed_out = True
                    return
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    return  # the call is over; its reader reads why
                continue
            if unanswered:
                wake_at = unanswered[0].deadline
                if due is not None:
                    wake_at = min(wake_at, now + due)
            elif due is not None:
                wake_at = now + due  # events wait for their batch: not idle
            else:
                wake_at = end.last_activity + STREAM_IDLE_SECONDS
                if now >= wake_at:
                    return
            await self._wait(wake_at - now)

    async def _await_answers(
        self, unanswered: deque[_Sent], reader: asyncio.Task[None], end: _StreamEnd
    ) -> None:
        """Once writing is done: the answers still due, each by its deadline, and the end."""
        loop = asyncio.get_running_loop()
        closing_deadline = loop.time() + self._options.request_timeout
        while not reader.done():
            self._ready.clear()
            deadline = unanswered[0].deadline if unanswered else closing_deadline
            if loop.time() >= deadline:
                end.timed_out = True
                return
            await self._wait(deadline - loop.time())

    async def _read(
        self,
        call: grpc.aio.StreamStreamCall[IngestBatchRequest, IngestBatchResponse],
        unanswered: deque[_Sent],
        end: _StreamEnd,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                assert isinstance(response, IngestBatchResponse)
                self._settle(unanswered.popleft().batch, response)
                end.answered += 1
                if self._failed_streams:
                    logger.info("sending again after %d failed streams", self._failed_streams)
                    self._failed_streams = 0
                end.last_activity = loop.time()
                self._ready.set()
        except grpc.aio.AioRpcError as error:
            end.error = error
        finally:
            self._ready.set()

    def _settle(self, batch: Batch, response: IngestBatchResponse) -> None:
        rejections = []
        if response.rejected_count:
            for result in response.results:
                if result.violations:
                    found = tuple(Violation(v.field, v.description) for v in result.violations)
                    message = "; ".join(f"{v.field}: {v.description}" for v in found)
                    rejections.append(Rejection(batch.events[result.index], found, message))
        self._queue.settle(batch, rejected=len(rejections))
        if rejections:
            first = rejections[0]
            logger.warning(
                "the server rejected %d of %d events; not sent again (event %s: %s)",
                len(rejections),
                len(batch.events),
                first.event.event_id,
                first.message,
            )
            for rejection in rejections:
                report_rejection(self._options.on_rejected, rejection)

    def _refuse(self, batch: Batch, error: grpc.aio.AioRpcError) -> None:
        message = f"{error.code().name}: {error.details()}"
        logger.error(
            "the server refused a request of %d events; not sent again (%s)",
            len(batch.events),
            message,
        )
        self._queue.settle(batch, rejected=len(batch.events))
        found = violations(error)
        for event in batch.events:
            report_rejection(self._options.on_rejected, Rejection(event, found, message))

    def _retry_delay(self, end: _StreamEnd) -> float:
        error = end.error
        delay = self._backoff.delay(error, answered=end.answered > 0)
        if error is None:
            why = f"a request went unanswered for {self._options.request_timeout:g} s"
        else:
            why = f"{error.code().name}: {error.details()}"
        if end.answered and delay == 0:
            # A stream that worked until the server ended it (its bound on a stream's life):
            # routine.
            level = logging.DEBUG
        else:
            self._failed_streams += 1
            # The first failure of a run says it; the next ones are detail.
            level = logging.WARNING if self._failed_streams == 1 else logging.INFO
        logger.log(
            level,
            "sending failed (%s); %d events held, trying again in %.1f s",
            why,
            self._queue.stats().queued,
            delay,
        )
        return delay
