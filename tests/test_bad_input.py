"""Bad input gets a clear error naming the field, and nothing of it reaches the stream or the
database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import (
    IngestBatchRequest,
    IngestBatchResponse,
    IngestRequest,
    IngestResponse,
    IngestStreamResponse,
)
from analytics.v1.report_pb2 import GetStatsRequest
from nats.js import JetStreamContext

from core.stream import EventStream
from runtime.serve import ApiServer
from tests.support.clients import GrpcClients, field_violations
from tests.support.jetstream import events_in
from tests.support.waiting import eventually
from writer.service import RunningWriter

GOOD = {"site_id": "site-123", "event_type": "page_view", "path": "/home"}
GOOD_EVENT = Event(site_id="site-123", event_type="page_view", path="/home")


async def events_in_stream(js: JetStreamContext, stream: EventStream) -> int:
    return len(await events_in(js, stream.name))


def invalid_argument(*violations: tuple[str, str]) -> dict[str, Any]:
    return {
        "error": "invalid_argument",
        "message": "; ".join(f"{field}: {description}" for field, description in violations),
        "field_violations": [
            {"field": field, "description": description} for field, description in violations
        ],
    }


@pytest.mark.parametrize(
    ("event", "violation"),
    [
        ({"event_type": "page_view", "path": "/"}, ("site_id", "is required")),
        ({"site_id": "s", "path": "/"}, ("event_type", "is required")),
        ({"site_id": "s", "event_type": "page_view"}, ("path", "is required")),
        ({**GOOD, "site_id": 12}, ("site_id", "must be a string")),
        ({**GOOD, "path": "home"}, ("path", "must start with '/'")),
        ({**GOOD, "user_id": "a\u0000b"}, ("user_id", "must not contain control characters")),
        (
            {**GOOD, "timestamp": "2025-11-14 10:00"},
            (
                "timestamp",
                "must be an RFC 3339 date-time with an offset, like 2025-11-14T10:00:00Z",
            ),
        ),
        (
            {**GOOD, "timestamp": "1999-12-31T00:00:00Z"},
            ("timestamp", "must not be before 2000-01-01T00:00:00+00:00"),
        ),
        ({**GOOD, "colour": "red"}, ("colour", "is not a known field")),
    ],
)
async def test_an_invalid_event_gets_400_naming_the_field(
    http: httpx.AsyncClient,
    js: JetStreamContext,
    stream: EventStream,
    event: dict[str, Any],
    violation: tuple[str, str],
) -> None:
    response = await http.post("/event", json=event)

    assert response.status_code == 400
    assert response.json() == invalid_argument(violation)
    assert await events_in_stream(js, stream) == 0


async def test_a_valid_event_does_reach_the_stream(
    http: httpx.AsyncClient, js: JetStreamContext, stream: EventStream
) -> None:
    assert (await http.post("/event", json=GOOD)).status_code == 202
    assert await events_in_stream(js, stream) == 1


async def test_malformed_json_gets_400(
    http: httpx.AsyncClient, js: JetStreamContext, stream: EventStream
) -> None:
    response = await http.post(
        "/event", content=b'{"site_id": "s",', headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json() == invalid_argument(
        (
            "body",
            "is not valid JSON: Expecting property name enclosed in double quotes at line 1 "
            "column 17",
        )
    )
    assert await events_in_stream(js, stream) == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "text/plain; charset=latin-1",
        "",
    ],
)
async def test_a_body_that_is_not_json_gets_415(
    http: httpx.AsyncClient, js: JetStreamContext, stream: EventStream, content_type: str
) -> None:
    response = await http.post(
        "/event", content=b'{"site_id": "s"}', headers={"content-type": content_type}
    )

    assert response.status_code == 415
    assert response.json() == {
        "error": "unsupported_media_type",
        "message": "Content-Type must be application/json or text/plain (UTF-8)",
    }
    assert await events_in_stream(js, stream) == 0


async def test_json_with_a_utf8_charset_is_accepted(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/event",
        content=b'{"site_id": "s", "event_type": "e", "path": "/"}',
        headers={"content-type": "application/json; charset=UTF-8"},
    )

    assert response.status_code == 202


async def test_a_body_over_one_mebibyte_gets_413(
    http: httpx.AsyncClient, js: JetStreamContext, stream: EventStream
) -> None:
    body = b'{"site_id": "s", "event_type": "e", "path": "/' + b"a" * (1024 * 1024) + b'"}'

    response = await http.post("/event", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "message": "the request body must be at most 1048576 bytes",
    }
    assert await events_in_stream(js, stream) == 0


async def test_a_body_sent_in_many_chunks_is_read_whole(
    http: httpx.AsyncClient, js: JetStreamContext, stream: EventStream
) -> None:
    body = json.dumps({**GOOD, "event_id": "chunked"}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for offset in range(len(body)):
            yield body[offset : offset + 1]

    response = await http.post(
        "/event", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "event_id": "chunked"}
    assert [event.event_id for event in await events_in(js, stream.name)] == ["chunked"]


async def test_a_chunked_body_over_the_limit_gets_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 65536

    response = await http.post(
        "/event", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413


async def test_a_batch_accepts_the_valid_events_and_reports_the_rest(
    http: httpx.AsyncClient, js: JetStreamContext, stream: EventStream
) -> None:
    response = await http.post(
        "/events", json=[GOOD, {**GOOD, "path": 5}, {**GOOD, "event_id": "e-2"}, "nope"]
    )

    assert response.status_code == 200
    body = response.json()
    assert body == {
        "accepted": 2,
        "rejected": 2,
        "results": [
            {"index": 0, "status": "accepted", "event_id": body["results"][0]["event_id"]},
            {
                "index": 1,
                "status": "rejected",
                "field_violations": [{"field": "path", "description": "must be a string"}],
            },
            {"index": 2, "status": "accepted", "event_id": "e-2"},
            {
                "index": 3,
                "status": "rejected",
                "field_violations": [
                    {"field": "body", "description": "must be a JSON object (an event)"}
                ],
            },
        ],
    }
    assert await events_in_stream(js, stream) == 2


async def test_a_batch_of_more_than_1000_events_gets_400(
    http: httpx.AsyncClient, js: JetStreamContext, stream: EventStream
) -> None:
    response = await http.post("/events", json=[GOOD] * 1001)

    assert response.status_code == 400
    assert response.json() == invalid_argument(("events", "at most 1000 events per batch"))
    assert await events_in_stream(js, stream) == 0


@pytest.mark.parametrize(
    ("params", "violations"),
    [
        ({}, [("site_id", "is required")]),
        (
            {"site_id": "s", "date": "2025-02-30"},
            [("date", "must be a calendar date as YYYY-MM-DD")],
        ),
        ({"site_id": "s", "limit": "ten"}, [("limit", "must be an integer from 1 to 1000")]),
        ({"site_id": "s", "limit": "9" * 5000}, [("limit", "must be an integer from 1 to 1000")]),
        ({"site_id": "s", "limit": "1001"}, [("limit", "must be between 1 and 1000")]),
        ({"site_id": "s", "from": "x"}, [("from", "is not a known parameter")]),
        ({"site_id": ["a", "b"]}, [("site_id", "appears more than once")]),
    ],
)
async def test_bad_stats_parameters_get_400_naming_them(
    http: httpx.AsyncClient, params: dict[str, Any], violations: list[tuple[str, str]]
) -> None:
    response = await http.get("/stats", params=params)

    assert response.status_code == 400
    assert response.json() == invalid_argument(*violations)


@pytest.mark.parametrize(
    ("query", "violations"),
    [
        (b"site_id=s&event_type=%FF", [("event_type", "must be valid UTF-8")]),
        (b"site_id=s&limit=%FF", [("limit", "must be valid UTF-8")]),
        (b"site_id=s&%FFx=1", [("\ufffdx", "is not a known parameter")]),
        (
            b"site_id=%FF&site_id=s",
            [("site_id", "must be valid UTF-8"), ("site_id", "appears more than once")],
        ),
        (
            b"site_id=%FF&site_id=%FF",
            [("site_id", "must be valid UTF-8"), ("site_id", "appears more than once")],
        ),
    ],
)
async def test_stats_parameters_that_are_not_utf8_get_400_naming_them(
    http: httpx.AsyncClient, query: bytes, violations: list[tuple[str, str]]
) -> None:
    response = await http.get(httpx.URL("/stats", query=query))

    assert response.status_code == 400
    assert response.json() == invalid_argument(*violations)


async def test_an_unknown_route_gets_a_json_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/nope")

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "GET /nope: Not Found"}


async def test_a_wrong_method_gets_a_json_405(http: httpx.AsyncClient) -> None:
    response = await http.get("/event")

    assert response.status_code == 405
    assert response.json() == {
        "error": "method_not_allowed",
        "message": "GET /event: Method Not Allowed",
    }


async def test_an_invalid_grpc_event_gets_invalid_argument_with_bad_request(
    rpc: GrpcClients, js: JetStreamContext, stream: EventStream
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc.ingest.Ingest(IngestRequest(event=Event(site_id="s", path="x")))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [
        ("event.event_type", "is required"),
        ("event.path", "must start with '/'"),
    ]
    assert await events_in_stream(js, stream) == 0


# 32 properties, each with the longest key a violation may name (64 characters, most of four
# bytes in UTF-8) and a value that breaks a rule.
WORST_PROPERTIES = {f"{i:02}" + "😀" * 62: "\x00" for i in range(32)}
WORST_PROPERTY_VIOLATIONS = [
    *((f"properties[{i:02}{'😀' * 62}]", "must not contain control characters") for i in range(5)),
    ("properties", "invalid entries not listed: 27"),
]


async def test_a_grpc_event_with_every_property_invalid_gets_invalid_argument(
    rpc: GrpcClients,
) -> None:
    event = Event(site_id="s", event_type="page_view", path="/", properties=WORST_PROPERTIES)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc.ingest.Ingest(IngestRequest(event=event))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [
        (f"event.{field}", description) for field, description in WORST_PROPERTY_VIOLATIONS
    ]


async def test_a_grpc_batch_of_1000_events_with_every_property_invalid_is_answered_in_full(
    rpc: GrpcClients,
) -> None:
    event = Event(site_id="s", event_type="page_view", path="/", properties=WORST_PROPERTIES)

    response = await rpc.ingest.IngestBatch(IngestBatchRequest(events=[event] * 1000))

    assert response.rejected_count == 1000
    assert all(
        [(v.field, v.description) for v in result.violations] == WORST_PROPERTY_VIOLATIONS
        for result in response.results
    )


async def test_a_grpc_request_without_an_event_gets_invalid_argument(rpc: GrpcClients) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc.ingest.Ingest(IngestRequest())

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [("event", "is required")]


async def test_a_grpc_batch_reports_each_rejected_event_by_index_and_field(
    rpc: GrpcClients, js: JetStreamContext, stream: EventStream
) -> None:
    good = GOOD_EVENT
    response = await rpc.ingest.IngestBatch(
        IngestBatchRequest(events=[good, Event(site_id="s"), good])
    )

    assert (response.accepted_count, response.rejected_count) == (2, 1)
    rejected = response.results[1]
    assert (rejected.index, rejected.event_id) == (1, "")
    assert [(v.field, v.description) for v in rejected.violations] == [
        ("event_type", "is required"),
        ("path", "is required"),
    ]
    assert [r.index for r in response.results] == [0, 1, 2]
    assert await events_in_stream(js, stream) == 2


async def test_a_grpc_batch_of_more_than_1000_events_gets_invalid_argument(
    rpc: GrpcClients, js: JetStreamContext, stream: EventStream
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc.ingest.IngestBatch(IngestBatchRequest(events=[GOOD_EVENT] * 1001))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [("events", "at most 1000 events per batch")]
    assert await events_in_stream(js, stream) == 0


async def test_bad_get_stats_arguments_get_invalid_argument(rpc: GrpcClients) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rpc.report.GetStats(GetStatsRequest(date="14.11.2025", limit=5000))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [
        ("site_id", "is required"),
        ("date", "must be a calendar date as YYYY-MM-DD"),
        ("limit", "must be between 1 and 1000"),
    ]


async def test_refused_events_never_reach_the_database(
    http: httpx.AsyncClient, rpc: GrpcClients, writer: RunningWriter, db: asyncpg.Connection
) -> None:
    await http.post("/event", json={**GOOD, "path": "nope"})
    await http.post("/events", json=[{**GOOD, "site_id": ""}, {**GOOD, "timestamp": "soon"}])
    await http.post("/event", content=b"{", headers={"content-type": "application/json"})
    await rpc.ingest.IngestBatch(IngestBatchRequest(events=[Event(site_id="s")]))
    marker = await http.post("/event", json={**GOOD, "event_id": "marker"})
    assert marker.status_code == 202

    async def stored_ids() -> list[str]:
        return [row["event_id"] for row in await db.fetch("SELECT event_id FROM events")]

    await eventually(stored_ids, ["marker"])
    assert await db.fetchval("SELECT sum(views) FROM daily_totals") == 1


async def test_a_grpc_string_that_is_not_utf8_gets_invalid_argument_naming_it(
    api: ApiServer, js: JetStreamContext, stream: EventStream
) -> None:
    # IngestRequest{event: Event{site_id: b"\xff"}}: a string field that is not UTF-8.
    raw = b"\x0a\x03\x12\x01\xff"
    async with grpc.aio.insecure_channel(str(api.grpc)) as channel:
        ingest: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            "/analytics.v1.IngestService/Ingest"
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await ingest(raw)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [("event.site_id", "must be valid UTF-8")]
    assert await events_in_stream(js, stream) == 0


async def test_a_grpc_event_is_stored_without_the_fields_the_contract_does_not_define(
    api: ApiServer, js: JetStreamContext, stream: EventStream
) -> None:
    # Field 111 of the Event, 1.5 MB long: more than a NATS message may hold.
    junk = b"x" * 1_500_000
    event = GOOD_EVENT.SerializeToString() + b"\xfa\x06" + _varint(len(junk)) + junk
    raw = b"\x0a" + _varint(len(event)) + event
    async with grpc.aio.insecure_channel(str(api.grpc)) as channel:
        ingest: grpc.aio.UnaryUnaryMultiCallable[bytes, IngestResponse] = channel.unary_unary(
            "/analytics.v1.IngestService/Ingest", response_deserializer=IngestResponse.FromString
        )
        response = await ingest(raw)

    [stored] = await events_in(js, stream.name)
    expected = Event(
        site_id="site-123", event_type="page_view", path="/home", event_id=response.event_id
    )
    expected.timestamp.CopyFrom(stored.timestamp)
    assert stored.SerializeToString() == expected.SerializeToString()


def _varint(value: int) -> bytes:
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


async def test_an_undecodable_event_in_a_grpc_stream_is_rejected_alone(
    api: ApiServer, js: JetStreamContext, stream: EventStream
) -> None:
    good = GOOD_EVENT.SerializeToString()

    async def events() -> AsyncIterator[bytes]:
        for item in (good, b"\x12\x01\xff", good):
            yield item

    async with grpc.aio.insecure_channel(str(api.grpc)) as channel:
        ingest_stream: grpc.aio.StreamUnaryMultiCallable[bytes, IngestStreamResponse]
        ingest_stream = channel.stream_unary(
            "/analytics.v1.IngestService/IngestStream",
            response_deserializer=IngestStreamResponse.FromString,
        )
        summary = await ingest_stream(events())

    assert (summary.accepted_count, summary.rejected_count) == (2, 1)
    assert [(v.field, v.description) for v in summary.rejected[0].violations] == [
        ("site_id", "must be valid UTF-8")
    ]
    assert summary.rejected[0].index == 1
    assert await events_in_stream(js, stream) == 2


async def accepted_counts_until_failure(
    answers: AsyncIterable[IngestBatchResponse],
) -> tuple[list[int], grpc.aio.AioRpcError]:
    """The accepted_count of each answer of a batch stream, and the error that ended it."""
    counts: list[int] = []
    try:
        async for answer in answers:
            counts.append(answer.accepted_count)
    except grpc.aio.AioRpcError as error:
        return counts, error
    raise AssertionError("the stream ended without an error")


async def test_an_oversized_batch_ends_a_batch_stream_after_the_batches_before_it(
    rpc: GrpcClients, js: JetStreamContext, stream: EventStream
) -> None:
    async def requests() -> AsyncIterator[IngestBatchRequest]:
        for size in (2, 1001, 3):
            yield IngestBatchRequest(events=[GOOD_EVENT] * size)

    answered, error = await accepted_counts_until_failure(rpc.ingest.IngestBatchStream(requests()))

    assert answered == [2]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == [("events", "at most 1000 events per batch")]
    assert await events_in_stream(js, stream) == 2


async def test_an_undecodable_request_ends_a_batch_stream_after_the_batches_before_it(
    api: ApiServer, js: JetStreamContext, stream: EventStream
) -> None:
    good = IngestBatchRequest(events=[GOOD_EVENT]).SerializeToString()

    async def requests() -> AsyncIterator[bytes]:
        # The middle one: IngestBatchRequest{events: [Event{site_id: b"\xff"}]}.
        for request in (good, b"\x0a\x03\x12\x01\xff", good):
            yield request

    async with grpc.aio.insecure_channel(str(api.grpc)) as channel:
        batch_stream: grpc.aio.StreamStreamMultiCallable[bytes, IngestBatchResponse]
        batch_stream = channel.stream_stream(
            "/analytics.v1.IngestService/IngestBatchStream",
            response_deserializer=IngestBatchResponse.FromString,
        )
        answered, error = await accepted_counts_until_failure(batch_stream(requests()))

    assert answered == [1]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(error) == [("events[0].site_id", "must be valid UTF-8")]
    assert await events_in_stream(js, stream) == 1
