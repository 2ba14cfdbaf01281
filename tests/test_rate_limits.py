"""Rate limits at both doors of both services: ingestion per site and per client IP, counted in
events; reports per caller (its credential, else its IP). The rates are a token in 1000 s, so
that only the bursts pass while a test runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import httpx
import pytest
from analytics.v1 import event_pb2, ingest_pb2, report_pb2
from google.rpc import error_details_pb2

from core.settings import Settings
from devstack.api import SERVICES
from runtime.serve import ApiServer, serving
from tests.support.clients import GrpcClients, grpc_clients, retry_delay, status_detail

SLOW = 0.001  # a token a second, a thousandth of


@pytest.fixture
async def limited(settings: Settings, migrated: None) -> AsyncIterator[ApiServer]:
    """Both services with bursts of 3 events per site, 5 per IP, 2 reports per caller."""
    limits = replace(
        settings,
        ingest_rate_per_site=SLOW,
        ingest_burst_per_site=3,
        ingest_rate_per_ip=SLOW,
        ingest_burst_per_ip=5,
        report_rate_per_caller=SLOW,
        report_burst_per_caller=2,
    )
    async with serving(limits, SERVICES) as server:
        yield server


@pytest.fixture
async def client(limited: ApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{limited.http}", timeout=10) as client:
        yield client


@pytest.fixture
async def stubs(limited: ApiServer) -> AsyncIterator[GrpcClients]:
    async with grpc_clients(limited.grpc) as clients:
        yield clients


def event(site: str) -> dict[str, str]:
    return {"site_id": site, "event_type": "page_view", "path": "/"}


def proto_event(site: str) -> event_pb2.Event:
    return event_pb2.Event(site_id=site, event_type="page_view", path="/")


async def test_http_answers_429_naming_the_site_limit_once_its_burst_is_spent(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        assert (await client.post("/event", json=event("site-a"))).status_code == 202
    refused = await client.post("/event", json=event("site-a"))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1000"
    assert refused.json() == {
        "error": "resource_exhausted",
        "message": "rate limit ingest_site: site:site-a may send 0.001 events a second (3 at "
        "once); retry in 1000 s",
        "limit": "ingest_site",
        "subject": "site:site-a",
    }


async def test_the_client_ip_limit_counts_every_event_of_every_site(
    client: httpx.AsyncClient,
) -> None:
    batch = [event(f"site-{n}") for n in range(4)]
    assert (await client.post("/events", json=batch)).status_code == 200
    assert (await client.post("/event", json=event("site-4"))).status_code == 202
    refused = await client.post("/event", json=event("site-5"))
    assert refused.status_code == 429
    assert (refused.json()["limit"], refused.json()["subject"]) == ("ingest_ip", "ip:127.0.0.1")


async def test_a_refused_batch_counts_nothing_against_its_sites(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post("/event", json=event("site-c"))).status_code == 202
    # 3 events of site-a would pass; with 2 of site-b they are over the IP's 4 left.
    both = [event("site-a")] * 3 + [event("site-b")] * 2
    assert (await client.post("/events", json=both)).status_code == 429
    assert (await client.post("/events", json=[event("site-a")] * 3)).status_code == 200


async def test_grpc_answers_resource_exhausted_with_retry_info_and_quota_failure(
    stubs: GrpcClients,
) -> None:
    await stubs.ingest.IngestBatch(ingest_pb2.IngestBatchRequest(events=[proto_event("g")] * 3))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stubs.ingest.Ingest(ingest_pb2.IngestRequest(event=proto_event("g")))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay(refused.value) == 1000
    quota = status_detail(refused.value, error_details_pb2.QuotaFailure)
    assert [(v.subject, v.description) for v in quota.violations] == [
        ("site:g", "rate limit ingest_site")
    ]


async def test_a_batch_stream_ends_at_the_request_a_limit_refuses(stubs: GrpcClients) -> None:
    requests = [ingest_pb2.IngestBatchRequest(events=[proto_event("s")] * 2) for _ in range(3)]
    call = stubs.ingest.IngestBatchStream(iter(requests))
    answered: list[int] = []

    async def read() -> None:
        async for answer in call:
            answered.append(answer.accepted_count)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await read()
    assert answered == [2]
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay(refused.value) == 1000


async def test_an_ingest_stream_is_answered_up_to_the_chunk_a_limit_refuses(
    stubs: GrpcClients,
) -> None:
    await stubs.ingest.Ingest(ingest_pb2.IngestRequest(event=proto_event("t")))
    answer = await stubs.ingest.IngestStream(iter([proto_event("t")] * 4))
    assert (answer.accepted_count, answer.rejected_count) == (0, 0)
    assert answer.limit_reached.startswith("rate limit ingest_site: site:t may send")


async def test_reports_are_limited_per_credential_over_both_doors_before_it_is_checked(
    client: httpx.AsyncClient, stubs: GrpcClients
) -> None:
    # Tokens nobody issued: refused as unauthenticated, and counted all the same.
    token_a = {"authorization": "Bearer a"}
    stats = {"site_id": "site-a", "date": "2025-11-14"}
    assert (await client.get("/stats", params=stats, headers=token_a)).status_code == 401
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stubs.report.GetStats(
            report_pb2.GetStatsRequest(site_id="site-a", date="2025-11-14"),
            metadata=(("authorization", "Bearer a"),),
        )
    assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
    refused = await client.get("/stats", params=stats, headers=token_a)
    assert refused.status_code == 429
    assert (refused.json()["limit"], refused.json()["subject"]) == (
        "report_caller",
        "the credential presented",
    )
    other = await client.get("/stats", params=stats, headers={"authorization": "Bearer b"})
    assert other.status_code == 401
    assert (await client.get("/stats", params=stats)).status_code == 200  # by IP


async def test_grpc_reports_over_the_limit_fail_with_resource_exhausted(
    stubs: GrpcClients,
) -> None:
    request = report_pb2.GetStatsRequest(site_id="site-a", date="2025-11-14")
    for _ in range(2):
        await stubs.report.GetStats(request)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stubs.report.GetStats(request)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    quota = status_detail(refused.value, error_details_pb2.QuotaFailure)
    assert [v.subject for v in quota.violations] == ["ip:127.0.0.1"]


async def test_refused_requests_are_counted_in_the_metrics_by_limit(
    client: httpx.AsyncClient,
) -> None:
    before = await throttled(client, "ingest_site")
    for _ in range(5):
        await client.post("/event", json=event("site-m"))
    assert await throttled(client, "ingest_site") == before + 2


async def throttled(client: httpx.AsyncClient, limit: str) -> float:
    """The counter of refused requests of `limit` (the process's: earlier tests' included)."""
    series = f'analytics_throttled_requests_total{{limit="{limit}"}} '
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(series):
            return float(line.removeprefix(series))
    return 0.0
