"""Health and readiness: `/healthz`, `/readyz`, gRPC's standard health service and server
reflection, as load balancers, orchestrators and grpcurl use them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from core.settings import Settings
from devstack.api import SERVICES
from devstack.embedded import EmbeddedNats
from runtime.serve import ApiServer, serving
from tests.support.waiting import eventually

SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_healthz_says_the_process_is_alive(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "alive"})


async def test_readyz_names_each_dependency_reachable(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "dependencies": {"nats": "reachable", "postgresql": "reachable"},
    }


async def test_grpc_health_says_every_service_and_the_server_are_serving(api: ApiServer) -> None:
    async with grpc.aio.insecure_channel(str(api.grpc)) as channel:
        statuses = {
            service: await _status(channel, service)
            for service in (
                "",
                "analytics.v1.IngestService",
                "analytics.v1.ReportService",
                "analytics.v1.SiteService",
            )
        }

    assert set(statuses.values()) == {SERVING}


async def test_grpc_health_does_not_know_a_service_the_server_does_not_serve(
    api: ApiServer,
) -> None:
    async with grpc.aio.insecure_channel(str(api.grpc)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await _status(channel, "analytics.v1.NoSuchService")

    assert failure.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_services(api: ApiServer) -> None:
    async with grpc.aio.insecure_channel(str(api.grpc)) as channel:
        [answer] = await _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))

    assert sorted(s.name for s in answer.list_services_response.service) == [
        "analytics.v1.AdminService",
        "analytics.v1.IngestService",
        "analytics.v1.ReportService",
        "analytics.v1.SiteService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ]


async def test_reflection_describes_a_service_without_our_proto_files(api: ApiServer) -> None:
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="analytics.v1.IngestService"
    )
    async with grpc.aio.insecure_channel(str(api.grpc)) as channel:
        [answer] = await _reflect(channel, request)

    files = [
        FileDescriptorProto.FromString(data)
        for data in answer.file_descriptor_response.file_descriptor_proto
    ]
    [ingest] = [f for f in files if f.name == "analytics/v1/ingest.proto"]
    assert [m.name for m in ingest.service[0].method] == [
        "Ingest",
        "IngestBatch",
        "IngestStream",
        "IngestBatchStream",
    ]


class TestNatsOutage:
    @pytest.fixture
    def own_nats(self, tmp_path: Path) -> Iterator[EmbeddedNats]:
        with EmbeddedNats(tmp_path / "nats") as server:
            yield server

    @pytest.fixture
    async def api(
        self, settings: Settings, migrated: None, own_nats: EmbeddedNats
    ) -> AsyncIterator[ApiServer]:
        async with serving(replace(settings, nats_url=own_nats.url), SERVICES) as server:
            yield server

    async def test_readyz_answers_503_naming_nats_while_it_is_down(
        self, http: httpx.AsyncClient, own_nats: EmbeddedNats
    ) -> None:
        own_nats.stop()

        await eventually(lambda: _readiness(http), 503)
        response = await http.get("/readyz")
        assert response.json() == {
            "status": "not_ready",
            "dependencies": {"nats": "unreachable", "postgresql": "reachable"},
        }

    async def test_grpc_health_says_ingest_is_not_serving_while_nats_is_down(
        self, api: ApiServer, own_nats: EmbeddedNats
    ) -> None:
        own_nats.stop()

        async with grpc.aio.insecure_channel(str(api.grpc)) as channel:
            await eventually(lambda: _status(channel, "analytics.v1.IngestService"), NOT_SERVING)
            assert await _status(channel, "") == NOT_SERVING
            assert await _status(channel, "analytics.v1.ReportService") == SERVING

    async def test_everything_is_serving_again_when_nats_returns(
        self, api: ApiServer, http: httpx.AsyncClient, own_nats: EmbeddedNats
    ) -> None:
        own_nats.stop()
        async with grpc.aio.insecure_channel(str(api.grpc)) as channel:
            await eventually(lambda: _status(channel, ""), NOT_SERVING)

            own_nats.start()

            await eventually(lambda: _status(channel, ""), SERVING)
            assert await _status(channel, "analytics.v1.IngestService") == SERVING
        assert (await http.get("/readyz")).status_code == 200


async def test_grpc_health_says_not_serving_once_the_server_is_stopping(
    settings: Settings, migrated: None
) -> None:
    async with serving(settings, SERVICES) as server:
        channel = grpc.aio.insecure_channel(str(server.grpc))
        watch = _health(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == SERVING
    try:
        last = await watch.read()
        assert last.status == NOT_SERVING
    finally:
        await channel.close()


async def _status(channel: grpc.aio.Channel, service: str) -> int:
    answer = await _health(channel).Check(health_pb2.HealthCheckRequest(service=service))
    status: int = answer.status
    return status


async def _reflect(
    channel: grpc.aio.Channel, request: reflection_pb2.ServerReflectionRequest
) -> list[reflection_pb2.ServerReflectionResponse]:
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
    return [answer async for answer in stub.ServerReflectionInfo(iter([request]))]


async def _readiness(http: httpx.AsyncClient) -> int:
    return (await http.get("/readyz")).status_code


def _health(channel: grpc.aio.Channel) -> Any:
    """The health service's client (its stubs are typed for synchronous channels)."""
    return health_pb2_grpc.HealthStub(channel)
