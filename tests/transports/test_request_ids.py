"""Every answer names its request's id: the client's `X-Request-Id` / `x-request-id` when sane,
else one the server made."""

from __future__ import annotations

import grpc
import httpx
import pytest
from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import IngestRequest
from analytics.v1.report_pb2 import GetStatsRequest

from tests.support.clients import GrpcClients

EVENT = {"site_id": "site-1", "event_type": "page_view", "path": "/home"}


async def test_an_http_answer_returns_the_clients_request_id(http: httpx.AsyncClient) -> None:
    response = await http.post("/event", json=EVENT, headers={"X-Request-Id": "client-req-1"})

    assert response.headers["x-request-id"] == "client-req-1"


async def test_an_http_request_without_an_id_is_given_one(http: httpx.AsyncClient) -> None:
    first = await http.get("/healthz")
    second = await http.get("/healthz")

    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_an_http_error_returns_the_request_id_too(http: httpx.AsyncClient) -> None:
    response = await http.post("/event", json={}, headers={"X-Request-Id": "client-req-2"})

    assert (response.status_code, response.headers["x-request-id"]) == (400, "client-req-2")


async def test_an_insane_http_request_id_is_replaced(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz", headers={"X-Request-Id": "no spaces please"})

    assert response.headers["x-request-id"] not in ("", "no spaces please")


async def test_a_grpc_call_returns_the_clients_request_id_in_trailing_metadata(
    rpc: GrpcClients,
) -> None:
    call = rpc.ingest.Ingest(
        IngestRequest(event=Event(site_id="site-1", event_type="page_view", path="/home")),
        metadata=(("x-request-id", "client-req-3"),),
    )
    await call

    assert ("x-request-id", "client-req-3") in list(await call.trailing_metadata())


async def test_a_failed_grpc_call_returns_its_request_id_with_its_error_details(
    rpc: GrpcClients,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await rpc.report.GetStats(
            GetStatsRequest(site_id=""), metadata=(("x-request-id", "client-req-4"),)
        )

    trailing = dict(failure.value.trailing_metadata() or ())
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailing["x-request-id"] == "client-req-4"
    assert "grpc-status-details-bin" in trailing
