"""Slow and greedy clients: each bound on what one client may hold (a connection, a call, a
stream, a database connection) is reached and answered, and the clients within it are served."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import IngestBatchRequest, IngestBatchResponse, IngestStreamResponse
from analytics.v1.ingest_pb2_grpc import IngestServiceStub
from analytics.v1.report_pb2 import GetStatsRequest
from analytics.v1.report_pb2_grpc import ReportServiceStub
from google.rpc.code_pb2 import Code
from google.rpc.status_pb2 import Status
from grpc_status import rpc_status
from nats.js import JetStreamContext

from core.settings import Address, Settings
from devstack.api import SERVICES
from runtime.serve import ApiServer, serving
from tests.support.clients import grpc_clients, retry_delay
from tests.support.jetstream import events_in
from tests.support.waiting import eventually

EVENT = {"site_id": "site-1", "event_type": "page_view", "path": "/home"}
PAGE_VIEW = Event(site_id="site-1", event_type="page_view", path="/home")
STATS = "/stats?site_id=site-1"


@asynccontextmanager
async def api_with(settings: Settings, **bounds: Any) -> AsyncIterator[ApiServer]:
    """Both services, serving with `bounds` changed from the test's settings."""
    async with serving(replace(settings, **bounds), SERVICES) as api:
        yield api


async def sent_then_answer(address: Address, data: bytes) -> bytes:
    """What the server sends, up to closing the connection, to a client that sends `data` and
    then nothing more."""
    reader, writer = await asyncio.open_connection(address.host, address.port)
    try:
        writer.write(data)
        async with asyncio.timeout(10):  # the bound under test, with room: not a hang
            return await reader.read()
    finally:
        writer.close()


@asynccontextmanager
async def http_clients(api: ApiServer, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """`count` HTTP clients, each keeping its own connection."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(httpx.AsyncClient(base_url=f"http://{api.http}"))
            for _ in range(count)
        ]


def closing_answer(status: str, body: dict[str, Any]) -> bytes:
    """An HTTP/1.1 answer with a JSON body that closes its connection."""
    content = json.dumps(body, separators=(",", ":")).encode()
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(content)}\r\nconnection: close\r\n\r\n"
    ).encode() + content


class TestHttpReadTimeout:
    TIMED_OUT = closing_answer(
        "408 Request Timeout",
        {
            "error": "request_timeout",
            "message": "the request was not received whole within 0.5 seconds",
        },
    )

    async def test_a_body_not_sent_whole_in_time_is_answered_408_and_its_connection_closed(
        self, settings: Settings, migrated: None
    ) -> None:
        async with api_with(settings, http_read_timeout=0.5) as api:
            answer = await sent_then_answer(
                api.http,
                b"POST /event HTTP/1.1\r\nhost: api\r\ncontent-type: application/json\r\n"
                b'content-length: 60\r\n\r\n{"site_id": "site-1", ',
            )

        assert answer == self.TIMED_OUT

    async def test_a_head_not_sent_whole_in_time_is_answered_408_and_its_connection_closed(
        self, settings: Settings, migrated: None
    ) -> None:
        async with api_with(settings, http_read_timeout=0.5) as api:
            answer = await sent_then_answer(api.http, b"POST /event HTTP/1.1\r\nhost: ap")

        assert answer == self.TIMED_OUT

    async def test_a_connection_that_sends_nothing_is_answered_408_and_closed(
        self, settings: Settings, migrated: None
    ) -> None:
        async with api_with(settings, http_read_timeout=0.5) as api:
            answer = await sent_then_answer(api.http, b"")

        assert answer == self.TIMED_OUT

    async def test_each_request_of_a_kept_alive_connection_has_the_read_timeout_anew(
        self, settings: Settings, migrated: None
    ) -> None:
        async with api_with(settings, http_read_timeout=0.5) as api:
            answer = await sent_then_answer(
                api.http,
                b"GET /stats?site_id=site-1 HTTP/1.1\r\nhost: api\r\n\r\n"
                b"GET /stats?site_id=site-1 HTTP/1.1\r\nhost: ap",
            )

        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b'"top_paths":[]}' + self.TIMED_OUT)

    async def test_a_body_sent_slowly_but_whole_in_time_is_accepted(
        self, settings: Settings, migrated: None
    ) -> None:
        body = json.dumps(EVENT).encode()

        async def slowly() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 16):
                yield body[start : start + 16]
                await asyncio.sleep(0.1)

        async with (
            api_with(settings, http_read_timeout=5) as api,
            httpx.AsyncClient(base_url=f"http://{api.http}") as client,
        ):
            response = await client.post(
                "/event", content=slowly(), headers={"content-type": "application/json"}
            )

        assert response.status_code == 202


class TestHttpMaxConnections:
    async def test_a_connection_over_the_bound_is_answered_503_with_retry_after_and_closed(
        self, settings: Settings, migrated: None
    ) -> None:
        async with (
            api_with(settings, http_max_connections=2) as api,
            http_clients(api, 3) as (first, second, third),
        ):
            await first.get(STATS)
            await second.get(STATS)
            response = await third.get(STATS)

        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.headers["connection"] == "close"
        assert response.json() == {
            "error": "unavailable",
            "message": "the server is serving all the connections it may; retry",
        }

    async def test_the_connections_within_the_bound_are_served_while_one_over_it_is_refused(
        self, settings: Settings, migrated: None
    ) -> None:
        async with (
            api_with(settings, http_max_connections=2) as api,
            http_clients(api, 3) as (first, second, third),
        ):
            await first.get(STATS)
            await second.get(STATS)
            refused = await third.get(STATS)
            served = await first.post("/event", json=EVENT), await second.get(STATS)

        assert refused.status_code == 503
        assert [response.status_code for response in served] == [202, 200]

    async def test_a_browser_on_an_allowed_origin_may_read_the_503(
        self, settings: Settings, migrated: None
    ) -> None:
        async with (
            api_with(settings, http_max_connections=1) as api,
            http_clients(api, 2) as (first, second),
        ):
            await first.get(STATS)
            response = await second.get(STATS, headers={"origin": "https://shop.example"})

        assert response.status_code == 503
        assert response.headers["access-control-allow-origin"] == "*"


class TestGrpcMaxConcurrentRpcs:
    async def test_a_call_over_the_bound_fails_with_resource_exhausted(
        self, settings: Settings, migrated: None
    ) -> None:
        async with (
            api_with(settings, grpc_max_concurrent_rpcs=1) as api,
            grpc_clients(api.grpc) as rpc,
        ):
            stream = rpc.ingest.IngestBatchStream()
            await stream.write(IngestBatchRequest(events=[PAGE_VIEW]))
            await stream.read()  # answered: the stream is in flight
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await rpc.report.GetStats(GetStatsRequest(site_id="site-1"))
            await stream.done_writing()

        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.value.details() == "Concurrent RPC limit exceeded!"


class TestGrpcMaxConnectionAge:
    async def test_a_connection_is_closed_at_its_age(
        self, settings: Settings, migrated: None
    ) -> None:
        async with (
            api_with(settings, grpc_max_connection_age=0.5) as api,
            grpc.aio.insecure_channel(str(api.grpc)) as channel,
        ):
            await ReportServiceStub(channel).GetStats(GetStatsRequest(site_id="site-1"))
            connected = channel.get_state()
            await eventually(lambda: state_of(channel), grpc.ChannelConnectivity.IDLE)

        assert connected == grpc.ChannelConnectivity.READY

    async def test_a_stream_open_when_its_connection_ages_is_served_to_its_end(
        self, settings: Settings, migrated: None
    ) -> None:
        async with (
            api_with(settings, grpc_max_connection_age=0.5) as api,
            grpc.aio.insecure_channel(str(api.grpc)) as channel,
        ):
            stream = IngestServiceStub(channel).IngestBatchStream()
            await stream.write(IngestBatchRequest(events=[PAGE_VIEW]))
            first = await accepted_count(stream)
            await eventually(lambda: state_of(channel), grpc.ChannelConnectivity.IDLE)
            await stream.write(IngestBatchRequest(events=[PAGE_VIEW]))
            second = await accepted_count(stream)
            await stream.done_writing()
            status = await stream.code()

        assert (first, second, status) == (1, 1, grpc.StatusCode.OK)


class TestIngestStreamBounds:
    async def test_a_stream_over_its_event_bound_is_answered_for_the_events_before_it(
        self, settings: Settings, migrated: None, js: JetStreamContext
    ) -> None:
        async def five_events() -> AsyncIterator[Event]:
            for number in range(5):
                yield Event(site_id="site-1", event_type="page_view", path=f"/{number}")

        async with (
            api_with(settings, ingest_stream_max_events=3) as api,
            grpc_clients(api.grpc) as rpc,
        ):
            summary = await rpc.ingest.IngestStream(five_events())

        assert summary == IngestStreamResponse(
            accepted_count=3, limit_reached="at most 3 events per stream"
        )
        assert [e.path for e in await events_in(js, settings.stream_name)] == ["/0", "/1", "/2"]

    async def test_a_stream_of_as_many_events_as_its_bound_is_read_to_its_end(
        self, settings: Settings, migrated: None
    ) -> None:
        async def three_events() -> AsyncIterator[Event]:
            for _ in range(3):
                yield PAGE_VIEW

        async with (
            api_with(settings, ingest_stream_max_events=3) as api,
            grpc_clients(api.grpc) as rpc,
        ):
            summary = await rpc.ingest.IngestStream(three_events())

        assert summary == IngestStreamResponse(accepted_count=3)

    async def test_a_stream_open_past_its_time_bound_is_answered_for_the_events_read(
        self, settings: Settings, migrated: None, js: JetStreamContext
    ) -> None:
        async with (
            api_with(settings, ingest_stream_max_seconds=0.5) as api,
            grpc_clients(api.grpc) as rpc,
        ):
            stream = rpc.ingest.IngestStream()
            await stream.write(PAGE_VIEW)
            await stream.write(PAGE_VIEW)
            async with asyncio.timeout(10):  # the bound under test, with room: not a hang
                summary = await stream

        assert summary == IngestStreamResponse(
            accepted_count=2, limit_reached="at most 0.5 seconds per stream"
        )
        assert len(await events_in(js, settings.stream_name)) == 2


class TestIngestBatchStreamBound:
    async def test_a_stream_open_past_its_time_bound_ends_with_resource_exhausted_once_answered(
        self, settings: Settings, migrated: None, js: JetStreamContext
    ) -> None:
        async with (
            api_with(settings, ingest_stream_max_seconds=0.5) as api,
            grpc_clients(api.grpc) as rpc,
        ):
            stream = rpc.ingest.IngestBatchStream()
            await stream.write(IngestBatchRequest(events=[PAGE_VIEW, PAGE_VIEW]))
            answered = await accepted_count(stream)
            async with asyncio.timeout(10):  # the bound under test, with room: not a hang
                with pytest.raises(grpc.aio.AioRpcError) as ended:
                    await stream.read()

        assert answered == 2
        assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert ended.value.details() == (
            "a stream stays open at most 0.5 seconds; the requests answered were stored, and "
            "none after them was: send those in a new stream"
        )
        assert rpc_status.from_call(ended.value) == Status(
            code=Code.RESOURCE_EXHAUSTED, message=ended.value.details()
        )  # no RetryInfo: a new stream may start at once
        assert len(await events_in(js, settings.stream_name)) == 2


class TestReportBounds:
    DAY = "/stats?site_id=site-1&date=2025-11-14"

    async def test_a_report_finding_no_free_connection_in_time_is_answered_503(
        self, settings: Settings, db: asyncpg.Connection
    ) -> None:
        async with (
            api_with(settings, report_pool_size=1, report_acquire_timeout=0.2) as api,
            http_clients(api, 2) as (first, second),
        ):
            async with db.transaction():
                await db.execute("LOCK TABLE daily_totals IN ACCESS EXCLUSIVE MODE")
                stalled = asyncio.create_task(first.get(self.DAY))
                await eventually(lambda: waiting_for_locks(db), 1)  # it holds the connection
                refused = await second.get(self.DAY)
            served = await stalled

        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json() == {
            "error": "unavailable",
            "message": "no database connection was free within 0.2 seconds; retry",
        }
        assert served.status_code == 200

    async def test_a_report_running_past_the_statement_timeout_is_answered_429(
        self, settings: Settings, db: asyncpg.Connection
    ) -> None:
        async with (
            api_with(settings, report_statement_timeout=0.2) as api,
            http_clients(api, 1) as (client,),
            db.transaction(),
        ):
            await db.execute("LOCK TABLE daily_totals IN ACCESS EXCLUSIVE MODE")
            response = await client.get(self.DAY)

        assert response.status_code == 429
        assert response.headers["retry-after"] == "5"
        assert response.json() == {
            "error": "resource_exhausted",
            "message": (
                "the report ran longer than its bound of 0.2 seconds; retry later or ask for "
                "fewer days"
            ),
        }

    async def test_a_grpc_report_past_the_statement_timeout_fails_with_resource_exhausted(
        self, settings: Settings, db: asyncpg.Connection
    ) -> None:
        async with (
            api_with(settings, report_statement_timeout=0.2) as api,
            grpc_clients(api.grpc) as rpc,
            db.transaction(),
        ):
            await db.execute("LOCK TABLE daily_totals IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await rpc.report.GetStats(GetStatsRequest(site_id="site-1", date="2025-11-14"))

        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_delay(refused.value) == 5


async def waiting_for_locks(db: asyncpg.Connection) -> int:
    """Statements waiting for a lock on the database, the session of `db` holding it."""
    waiting: int = await db.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted")
    return waiting


async def accepted_count(
    stream: grpc.aio.StreamStreamCall[IngestBatchRequest, IngestBatchResponse],
) -> int:
    """The accepted count of the stream's next answer."""
    answer = await stream.read()
    assert isinstance(answer, IngestBatchResponse), answer
    return answer.accepted_count


async def state_of(channel: grpc.aio.Channel) -> grpc.ChannelConnectivity:
    return channel.get_state()
