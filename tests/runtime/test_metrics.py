"""`/metrics`: requests by route or method and status, the services' own metrics, and the sum of
every worker's when several processes serve one port."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import IngestBatchRequest
from analytics.v1.report_pb2 import GetStatsRequest
from prometheus_client import REGISTRY, Counter

from core.settings import Address, Settings
from devstack.api import SERVICES
from devstack.embedded import free_port
from runtime.ops import serving_ops
from runtime.serve import ApiServer, serving
from tests.support.clients import GrpcClients
from tests.support.env import ServiceStarter
from tests.support.metrics import sample, scrape
from tests.support.waiting import eventually
from writer.service import RunningWriter

EVENT = {"site_id": "site-1", "event_type": "page_view", "path": "/home"}
EVENT_MESSAGE = Event(site_id="site-1", event_type="page_view", path="/home")
DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "analytics.json"
# Declared in the default registry, as another part of a service declares its own metrics (a
# count of dropped events, say).
TEST_COUNTER = Counter("analytics_test_only", "For a test", ["reason"])


async def test_an_http_request_is_counted_by_route_method_and_status(
    http: httpx.AsyncClient,
) -> None:
    labels = {"route": "/event", "method": "POST", "status": "202"}
    before = await sample(http, "analytics_http_requests_total", **labels)

    await http.post("/event", json=EVENT)

    # Counted once the answer is sent: the client may read it first.
    await eventually(lambda: sample(http, "analytics_http_requests_total", **labels), before + 1)


async def test_an_http_request_is_timed_by_route_and_method(http: httpx.AsyncClient) -> None:
    labels = {"route": "/event", "method": "POST"}
    before = await sample(http, "analytics_http_request_duration_seconds_count", **labels)

    await http.post("/event", json=EVENT)

    assert (
        await sample(http, "analytics_http_request_duration_seconds_count", **labels) == before + 1
    )


async def test_a_route_with_parameters_is_counted_as_declared(http: httpx.AsyncClient) -> None:
    labels = {"route": "/sites/{site_id}", "method": "GET", "status": "404"}
    before = await sample(http, "analytics_http_requests_total", **labels)

    await http.get("/sites/no-such-site")

    # Counted once the answer is sent: the client may read it first.
    await eventually(lambda: sample(http, "analytics_http_requests_total", **labels), before + 1)


async def test_a_request_to_no_route_is_counted_as_unmatched(http: httpx.AsyncClient) -> None:
    labels = {"route": "unmatched", "method": "GET", "status": "404"}
    before = await sample(http, "analytics_http_requests_total", **labels)

    await http.get("/no/such/page")

    # Counted once the answer is sent: the client may read it first.
    await eventually(lambda: sample(http, "analytics_http_requests_total", **labels), before + 1)


async def test_a_grpc_call_is_counted_by_method_and_code(
    http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    labels = {"method": "/analytics.v1.ReportService/GetStats", "code": "INVALID_ARGUMENT"}
    before = await sample(http, "analytics_grpc_requests_total", **labels)

    with pytest.raises(Exception, match="INVALID_ARGUMENT"):
        await rpc.report.GetStats(GetStatsRequest(site_id=""))

    # Counted once the answer is sent: the client may read it first.
    await eventually(lambda: sample(http, "analytics_grpc_requests_total", **labels), before + 1)


async def test_events_are_counted_by_door_and_outcome(
    http: httpx.AsyncClient, rpc: GrpcClients
) -> None:
    async def counts() -> tuple[float, ...]:
        return tuple(
            [
                await sample(http, "analytics_ingest_events_total", door=door, outcome=outcome)
                for door, outcome in (
                    ("http", "accepted"),
                    ("http", "invalid"),
                    ("grpc", "accepted"),
                    ("grpc", "invalid"),
                )
            ]
        )

    before = await counts()

    await http.post("/events", json=[EVENT, EVENT, {**EVENT, "path": "no-slash"}])
    await rpc.ingest.IngestBatch(IngestBatchRequest(events=[EVENT_MESSAGE] * 4))

    after = await counts()
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 4, 0]


async def test_published_messages_are_measured(http: httpx.AsyncClient) -> None:
    before = await sample(http, "analytics_ingest_message_events_count")

    await http.post("/events", json=[EVENT] * 3)

    assert await sample(http, "analytics_ingest_message_events_count") >= before + 1
    assert await sample(http, "analytics_ingest_publish_seconds_count") >= before + 1


async def test_the_report_pool_is_measured(http: httpx.AsyncClient, settings: Settings) -> None:
    await eventually(
        lambda: sample(http, "analytics_db_pool_connections", pool="report", state="max"),
        float(settings.report_pool_size),
    )


async def test_metrics_of_the_default_registry_are_served(http: httpx.AsyncClient) -> None:
    TEST_COUNTER.labels("any").inc(3)

    assert await sample(http, "analytics_test_only_total", reason="any") >= 3


class TestMetricsOff:
    @pytest.fixture
    async def api(self, settings: Settings, migrated: None) -> AsyncIterator[ApiServer]:
        async with serving(replace(settings, metrics=False), SERVICES) as server:
            yield server

    async def test_no_metrics_are_served(self, http: httpx.AsyncClient) -> None:
        assert (await http.get("/metrics")).status_code == 404

    async def test_health_is_still_served(self, http: httpx.AsyncClient) -> None:
        assert (await http.get("/readyz")).status_code == 200


async def test_the_writer_serves_its_metrics_and_readiness_on_its_own_port(
    settings: Settings, writer: RunningWriter, http: httpx.AsyncClient
) -> None:
    async with (
        serving_ops(settings, Address("127.0.0.1", 0), writer.ready) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as ops,
    ):
        before = await sample(ops, "analytics_writer_batch_events_count")

        async def stored_more() -> bool:
            return await sample(ops, "analytics_writer_batch_events_count") > before

        await http.post("/event", json=EVENT)
        await eventually(stored_more, True)
        ready = await ops.get("/readyz")
        samples = await scrape(ops)

    assert ready.json()["dependencies"] == {"nats": "reachable", "postgresql": "reachable"}
    assert ("analytics_writer_commit_seconds_count", frozenset()) in samples
    assert ("analytics_writer_events_total", frozenset({("outcome", "new")})) in samples


def test_every_metric_the_dashboard_shows_is_served() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    shown = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for expression in expressions
        for name in re.findall(r"\banalytics_[a-z_]+", expression)
    }
    declared = {family.name for family in REGISTRY.collect()}

    assert shown
    assert shown - declared == set()


async def test_several_processes_on_one_port_serve_the_sum_of_their_metrics(
    settings: Settings, services: ServiceStarter
) -> None:
    workers = replace(
        settings,
        api_processes=2,
        grpc_listen=Address("127.0.0.1", free_port()),
        http_listen=Address("127.0.0.1", free_port()),
    )
    services("ingest_server", workers)
    base = f"http://{workers.http_listen}"
    await eventually(lambda: _answers(f"{base}/healthz"), True, within=30)

    # A connection per request: the kernel spreads them over both workers.
    for _ in range(20):
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.post("/event", json=EVENT)).status_code == 202

    async def counted() -> list[float]:
        """What eight scrapes, spread over the workers, each count."""
        seen = []
        for _ in range(8):
            async with httpx.AsyncClient(base_url=base) as client:
                labels = {"route": "/event", "method": "POST", "status": "202"}
                seen.append(await sample(client, "analytics_http_requests_total", **labels))
        return seen

    # Each worker adds its counts to the shared files once a second (runtime.metrics).
    await eventually(counted, [20.0] * 8)


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False
