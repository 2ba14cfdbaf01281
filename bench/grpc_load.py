"""The gRPC load generator: a grpc.aio client sending 500-event batches, run as its own process
(`python -m bench.grpc_load ...`) so that its CPU is accounted like wrk's. It prints one JSON
object with what was accepted.

Requests are serialized once up front (a few distinct batches, cycled) so the client spends
its time on the wire, not on building protobufs; the server assigns every event a new id, so
every event sent is a new event.

    batch   IngestBatch calls of BATCH events, CONCURRENCY in flight over CONNECTIONS
            connections in turn, for --seconds; with --rate, paced to about that many
            events per second
    stream  IngestStream calls of STREAM_EVENTS events each (the server publishes them in
            chunks of 500), CONCURRENCY in flight, for --seconds
    batchstream
            CONNECTIONS IngestBatchStream calls, one per connection, each sending
            BATCH-event batches for --seconds (the server stores up to 8 of a stream's
            batches at once)
    total   exactly --events events through IngestBatch, as fast as it goes (to fill the
            stream for the writer figure)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

import grpc
from analytics.v1 import ingest_pb2

from bench.dataset import EventFactory, TrafficShape, recent_window

BATCH = 500
STREAM_EVENTS = 5000
TEMPLATES = 32
INGEST_BATCH = "/analytics.v1.IngestService/IngestBatch"
INGEST_STREAM = "/analytics.v1.IngestService/IngestStream"
INGEST_BATCH_STREAM = "/analytics.v1.IngestService/IngestBatchStream"
CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
# Channels to one target share a connection unless each has its own subchannel pool.
OWN_CONNECTION = ("grpc.use_local_subchannel_pool", 1)
CONNECTIONS = 8


@dataclass
class LoadReport:
    accepted: int = 0
    rejected: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def failed(self, error: grpc.aio.AioRpcError) -> None:
        self.errors += 1
        self.first_error = self.first_error or f"{error.code()}: {error.details()}"


def _batches(seed: int, sites: int | None = None) -> list[bytes]:
    shape = TrafficShape() if sites is None else TrafficShape().spread_over(sites)
    factory = EventFactory(shape, seed=seed)
    start, span = recent_window()
    return [
        ingest_pb2.IngestBatchRequest(events=factory.events(BATCH, start, span)).SerializeToString()
        for _ in range(TEMPLATES)
    ]


def _streams(seed: int) -> list[list[bytes]]:
    factory = EventFactory(seed=seed)
    start, span = recent_window()
    return [
        [event.SerializeToString() for event in factory.events(STREAM_EVENTS, start, span)]
        for _ in range(2)
    ]


class _Calls:
    """The three ingest calls on one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        response = ingest_pb2.IngestBatchResponse.FromString
        self.batch: grpc.aio.UnaryUnaryMultiCallable[bytes, ingest_pb2.IngestBatchResponse] = (
            channel.unary_unary(INGEST_BATCH, response_deserializer=response)
        )
        self.stream: grpc.aio.StreamUnaryMultiCallable[bytes, ingest_pb2.IngestStreamResponse] = (
            channel.stream_unary(
                INGEST_STREAM, response_deserializer=ingest_pb2.IngestStreamResponse.FromString
            )
        )
        self.batch_stream: grpc.aio.StreamStreamMultiCallable[
            bytes, ingest_pb2.IngestBatchResponse
        ] = channel.stream_stream(INGEST_BATCH_STREAM, response_deserializer=response)


async def run_timed(
    target: str,
    mode: str,
    *,
    seconds: float,
    warmup: float,
    concurrency: int,
    seed: int,
    rate: float | None = None,
) -> LoadReport:
    """Count the events of the calls that complete within [warmup, warmup + seconds).

    The calls go over CONNECTIONS channels, each a connection of its own, in turn, as from
    several clients: with API_PROCESSES the kernel assigns each connection to one of the
    server's processes, and a few connections could leave one process most of the work.
    """
    report = LoadReport()
    channels = [
        grpc.aio.insecure_channel(target, options=[*CHANNEL_OPTIONS, OWN_CONNECTION])
        for _ in range(CONNECTIONS)
    ]
    connections = [_Calls(channel) for channel in channels]
    batches = _batches(seed)
    streams = _streams(seed) if mode == "stream" else []
    begin = time.perf_counter()
    window_start, window_end = begin + warmup, begin + warmup + seconds

    async def one_call(calls: _Calls, index: int) -> tuple[int, int]:
        if mode == "stream":
            streamed = await calls.stream(iter(streams[index % len(streams)]))
            return streamed.accepted_count, streamed.rejected_count
        answer = await calls.batch(batches[index % len(batches)])
        return answer.accepted_count, answer.rejected_count

    async def stream_of_batches(number: int) -> None:
        """One IngestBatchStream call sending batches until the window closes."""

        async def requests() -> AsyncIterator[bytes]:
            index = number
            while time.perf_counter() < window_end:
                yield batches[index % len(batches)]
                index += CONNECTIONS

        try:
            async for answer in connections[number].batch_stream(requests()):
                if window_start <= time.perf_counter() < window_end:
                    report.accepted += answer.accepted_count
                    report.rejected += answer.rejected_count
        except grpc.aio.AioRpcError as error:
            report.failed(error)

    async def worker(number: int) -> None:
        index = number
        while time.perf_counter() < window_end:
            await _turn_of(index, begin, rate)
            try:
                accepted, rejected = await one_call(connections[index % CONNECTIONS], index)
            except grpc.aio.AioRpcError as error:
                report.failed(error)
                await asyncio.sleep(0.01)
                continue
            finally:
                index += concurrency
            if window_start <= time.perf_counter() < window_end:
                report.accepted += accepted
                report.rejected += rejected

    try:
        if mode == "batchstream":
            await asyncio.gather(*(stream_of_batches(n) for n in range(CONNECTIONS)))
        else:
            await asyncio.gather(*(worker(n) for n in range(concurrency)))
    finally:
        for channel in channels:
            await channel.close()
    report.seconds = seconds
    return report


async def _turn_of(call: int, begin: float, rate: float | None) -> None:
    """Wait until call number `call` is due, for `rate` events per second from `begin`
    (unpaced, None: at once)."""
    if rate is not None:
        await asyncio.sleep(max(0.0, begin + call * BATCH / rate - time.perf_counter()))


async def run_total(
    target: str, events: int, concurrency: int, seed: int, sites: int | None = None
) -> LoadReport:
    """Send `events` events (rounded up to whole batches) and time it; over `sites` sites of
    equal traffic if given, else the traffic shape's."""
    report = LoadReport()
    calls = -(-events // BATCH)
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        batch_call: grpc.aio.UnaryUnaryMultiCallable[bytes, ingest_pb2.IngestBatchResponse] = (
            channel.unary_unary(
                INGEST_BATCH, response_deserializer=ingest_pb2.IngestBatchResponse.FromString
            )
        )
        batches = _batches(seed, sites)
        next_call = 0
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal next_call
            while next_call < calls:
                index = next_call
                next_call += 1
                try:
                    answer = await batch_call(batches[index % len(batches)])
                except grpc.aio.AioRpcError as error:
                    report.failed(error)
                    continue
                report.accepted += answer.accepted_count
                report.rejected += answer.rejected_count

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        report.seconds = time.perf_counter() - started
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", help="host:port of the IngestService")
    parser.add_argument("mode", choices=("batch", "stream", "batchstream", "total"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=None, help="events per second (batch)")
    parser.add_argument(
        "--sites", type=int, default=None, help="spread events over N sites (total)"
    )
    args = parser.parse_args()
    if args.mode == "total":
        report = asyncio.run(
            run_total(args.target, args.events, args.concurrency, args.seed, args.sites)
        )
    else:
        report = asyncio.run(
            run_timed(
                args.target,
                args.mode,
                seconds=args.seconds,
                warmup=args.warmup,
                concurrency=args.concurrency,
                seed=args.seed,
                rate=args.rate,
            )
        )
    print(json.dumps(asdict(report)))


if __name__ == "__main__":
    main()
