from __future__ import annotations

from dataclasses import replace

import httpx
from analytics.v1.report_pb2 import GetStatsRequest, Stats

from stack.config import Address, Settings
from stack.serve import serving
from tests.support.clients import grpc_clients


async def test_both_servers_listen_on_ipv6_addresses(settings: Settings) -> None:
    ipv6 = replace(settings, grpc_listen=Address("::1", 0), http_listen=Address("::1", 0))

    async with serving(ipv6, ingest=False, report=True) as server:
        async with httpx.AsyncClient(base_url=f"http://{server.http}") as http:
            response = await http.get("/stats", params={"site_id": "s", "date": "2025-11-14"})
        async with grpc_clients(server.grpc) as rpc:
            stats = await rpc.report.GetStats(GetStatsRequest(site_id="s"))

    assert str(server.http).startswith("[::1]:")
    assert response.status_code == 200
    assert stats == Stats(site_id="s")


async def test_a_service_of_the_process_serves_no_routes_of_the_other(settings: Settings) -> None:
    async with (
        serving(settings, ingest=False, report=True) as server,
        httpx.AsyncClient(base_url=f"http://{server.http}") as http,
    ):
        response = await http.post("/event", json={})

    assert response.status_code == 404
