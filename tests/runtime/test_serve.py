from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from dataclasses import replace

import httpx
from analytics.v1.report_pb2 import GetStatsRequest, Stats

from core.settings import Address, Settings
from devstack.embedded import free_port
from report_server.service import report_doors
from runtime.http_server import listening_socket
from runtime.serve import serving
from tests.support.clients import grpc_clients
from tests.support.waiting import eventually


async def test_both_servers_listen_on_ipv6_addresses(settings: Settings, migrated: None) -> None:
    ipv6 = replace(settings, grpc_listen=Address("::1", 0), http_listen=Address("::1", 0))

    async with serving(ipv6, [report_doors]) as server:
        async with httpx.AsyncClient(base_url=f"http://{server.http}") as http:
            response = await http.get("/stats", params={"site_id": "s", "date": "2025-11-14"})
        async with grpc_clients(server.grpc) as rpc:
            stats = await rpc.report.GetStats(GetStatsRequest(site_id="s"))

    assert str(server.http).startswith("[::1]:")
    assert response.status_code == 200
    assert stats == Stats(site_id="s")


async def test_a_service_of_the_process_serves_no_routes_of_the_other(
    settings: Settings, migrated: None
) -> None:
    async with (
        serving(settings, [report_doors]) as server,
        httpx.AsyncClient(base_url=f"http://{server.http}") as http,
    ):
        response = await http.post("/event", json={})

    assert response.status_code == 404


async def test_http_connections_are_accepted_with_tcp_nodelay(settings: Settings) -> None:
    # Without it, keep-alive clients wait ~40 ms per response (Nagle meets delayed ACKs).
    nodelay: list[int] = []

    def connected() -> asyncio.Protocol:
        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        return Probe()

    listening = listening_socket(Address("127.0.0.1", 0), share_port=False)
    server = await asyncio.get_running_loop().create_server(connected, sock=listening)
    async with server:
        _, writer = await asyncio.open_connection(*listening.getsockname())
        await eventually(lambda: _length(nodelay), 1)
        writer.close()

    assert nodelay == [1]


def test_a_service_refuses_a_taken_port_before_it_connects_to_anything(held_port: int) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "report_server"],
        env={
            **os.environ,
            "GRPC_LISTEN": f"127.0.0.1:{held_port}",
            "HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert finished.returncode == 1
    assert finished.stderr == (
        f"analytics-report: cannot listen on 127.0.0.1:{held_port} (GRPC_LISTEN): "
        "Address already in use; set GRPC_LISTEN to a free address\n"
    )


async def _length(items: list[int]) -> int:
    return len(items)
