"""How the client speaks IngestBatchStream when a stream fails: what it sends again and what
not. A scripted IngestService plays the server, since the real one fails only as its
dependencies do; the real stack's outages are in test_outage.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from analytics.v1 import ingest_pb2
from analytics_client import AsyncClient, Rejection, Stats, Violation
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

Requests = AsyncIterator[ingest_pb2.IngestBatchRequest]
Context = grpc.aio.ServicerContext[Any, Any]
Received = list[list[str]]  # per request, its event ids
Script = Callable[[Requests, Context, Received], AsyncIterator[ingest_pb2.IngestBatchResponse]]


class ScriptedIngest:
    """Serves IngestBatchStream alone, playing each stream by the next script, and the last
    one for every stream after; records what each stream received, and its metadata."""

    def __init__(self) -> None:
        self.scripts: list[Script] = []
        self.streams: list[Received] = []
        self.metadata: list[tuple[tuple[str, str | bytes], ...]] = []

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "analytics.v1.IngestService",
            {
                "IngestBatchStream": grpc.stream_stream_rpc_method_handler(
                    self.ingest_batch_stream,
                    request_deserializer=ingest_pb2.IngestBatchRequest.FromString,
                    response_serializer=ingest_pb2.IngestBatchResponse.SerializeToString,
                )
            },
        )

    async def ingest_batch_stream(
        self, requests: Requests, context: Context
    ) -> AsyncIterator[ingest_pb2.IngestBatchResponse]:
        script = self.scripts[min(len(self.streams), len(self.scripts) - 1)]
        received: Received = []
        self.streams.append(received)
        self.metadata.append(tuple(context.invocation_metadata() or ()))
        async for response in script(requests, context, received):
            yield response


def accepted(request: ingest_pb2.IngestBatchRequest) -> ingest_pb2.IngestBatchResponse:
    count = len(request.events)
    return ingest_pb2.IngestBatchResponse(
        results=[
            ingest_pb2.EventResult(index=i, event_id=e.event_id)
            for i, e in enumerate(request.events)
        ],
        accepted_count=count,
    )


async def answer_all(
    requests: Requests, context: Context, received: Received
) -> AsyncIterator[ingest_pb2.IngestBatchResponse]:
    async for request in requests:
        received.append([e.event_id for e in request.events])
        yield accepted(request)


async def read(requests: Requests, count: int, received: Received) -> list[Any]:
    read_ = []
    async for request in requests:
        received.append([e.event_id for e in request.events])
        read_.append(request)
        if len(read_) == count:
            break
    return read_


async def abort(context: Context, code: grpc.StatusCode, *details: Message) -> None:
    status = status_pb2.Status(code=code.value[0], message="scripted failure")
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    rich = rpc_status.to_status(status)
    await context.abort(rich.code, rich.details, rich.trailing_metadata)


def retry_at_once() -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo()  # a delay of 0 s


@pytest.fixture
async def server() -> AsyncIterator[tuple[ScriptedIngest, str]]:
    servicer = ScriptedIngest()
    grpc_server = grpc.aio.server()
    grpc_server.add_generic_rpc_handlers((servicer.handler(),))
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    yield servicer, f"127.0.0.1:{port}"
    await grpc_server.stop(None)


async def track(client: AsyncClient, count: int) -> list[str]:
    ids = [await client.track("site-1", "page_view", f"/{n}") for n in range(count)]
    assert None not in ids
    return [i for i in ids if i is not None]


async def test_a_failed_stream_sends_again_only_the_requests_it_left_unanswered(
    server: tuple[ScriptedIngest, str],
) -> None:
    scripted, target = server

    async def answer_one_of_three_then_fail(
        requests: Requests, context: Context, received: Received
    ) -> AsyncIterator[ingest_pb2.IngestBatchResponse]:
        first, _, _ = await read(requests, 3, received)
        yield accepted(first)
        await abort(context, grpc.StatusCode.UNAVAILABLE, retry_at_once())

    scripted.scripts = [answer_one_of_three_then_fail, answer_all]
    async with AsyncClient(target, batch_size=1) as client:
        ids = await track(client, 3)
        assert await client.flush(timeout=10)

        assert scripted.streams == [[[ids[0]], [ids[1]], [ids[2]]], [[ids[1]], [ids[2]]]]
        assert client.stats == Stats(
            queued=0, sent=3, rejected=0, dropped=0, retried=2, abandoned=0
        )


async def test_a_request_refused_with_invalid_argument_is_not_sent_again_and_those_after_are(
    server: tuple[ScriptedIngest, str],
) -> None:
    scripted, target = server

    async def refuse_the_first_of_two(
        requests: Requests, context: Context, received: Received
    ) -> AsyncIterator[ingest_pb2.IngestBatchResponse]:
        await read(requests, 2, received)
        too_many = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field="events", description="no")
            ]
        )
        await abort(context, grpc.StatusCode.INVALID_ARGUMENT, too_many)
        yield ingest_pb2.IngestBatchResponse()  # never reached: abort raises

    rejections: list[Rejection] = []
    scripted.scripts = [refuse_the_first_of_two, answer_all]
    async with AsyncClient(target, batch_size=1, on_rejected=rejections.append) as client:
        ids = await track(client, 2)
        assert await client.flush(timeout=10)

        assert scripted.streams == [[[ids[0]], [ids[1]]], [[ids[1]]]]
        assert [(r.event.event_id, r.violations, r.message) for r in rejections] == [
            (ids[0], (Violation("events", "no"),), "INVALID_ARGUMENT: scripted failure")
        ]
        assert client.stats == Stats(
            queued=0, sent=1, rejected=1, dropped=0, retried=1, abandoned=0
        )


async def test_a_request_unanswered_within_the_request_timeout_is_sent_again_on_a_new_stream(
    server: tuple[ScriptedIngest, str],
) -> None:
    scripted, target = server

    async def never_answer(
        requests: Requests, context: Context, received: Received
    ) -> AsyncIterator[ingest_pb2.IngestBatchResponse]:
        await read(requests, 1, received)
        await asyncio.Event().wait()  # until the client gives up on the stream
        yield ingest_pb2.IngestBatchResponse()

    scripted.scripts = [never_answer, answer_all]
    async with AsyncClient(target, request_timeout=0.5) as client:
        ids = await track(client, 1)
        assert await client.flush(timeout=20)

        assert scripted.streams == [[ids], [ids]]
        assert client.stats.retried == 1


async def test_every_call_carries_the_api_key_as_a_bearer_token(
    server: tuple[ScriptedIngest, str],
) -> None:
    scripted, target = server
    scripted.scripts = [answer_all]
    async with AsyncClient(target, api_key="k-123", metadata=[("x-tenant", "t1")]) as client:
        await track(client, 1)
        assert await client.flush(timeout=10)

    sent = dict(scripted.metadata[0])
    assert (sent["authorization"], sent["x-tenant"]) == ("Bearer k-123", "t1")
