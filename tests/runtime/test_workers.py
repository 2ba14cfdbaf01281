"""API_PROCESSES: several processes serve the same ports, and stop as one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from analytics.v1.event_pb2 import Event
from analytics.v1.ingest_pb2 import IngestBatchRequest
from nats.js import JetStreamContext

from core.settings import Address, Settings
from core.stream import EventStream
from devstack.embedded import free_port
from runtime.processes import ChildProcess
from tests.support.clients import grpc_clients
from tests.support.env import settings_env
from tests.support.jetstream import events_in
from tests.support.waiting import eventually

WORKERS = 2


def workers_of(parent: int | None) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return replace(
        settings,
        grpc_listen=Address("127.0.0.1", free_port()),
        http_listen=Address("127.0.0.1", free_port()),
    )


@pytest.fixture
def ingest(api_settings: Settings) -> Iterator[ChildProcess]:
    process = ChildProcess("analytics-ingest", signal.SIGTERM)
    process.spawn(
        [sys.executable, "-m", "ingest_server"],
        env={**settings_env(api_settings), "API_PROCESSES": str(WORKERS)},
    )
    yield process
    process.stop()


async def serving(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as http:
            await http.options(url)
    except httpx.TransportError:
        return False
    return True


async def test_several_processes_share_the_ports_and_accept_events(
    ingest: ChildProcess, api_settings: Settings, js: JetStreamContext, stream: EventStream
) -> None:
    url = f"http://{api_settings.http_listen}/event"
    await eventually(lambda: serving(url), True)
    body = {"site_id": "s", "event_type": "page_view", "path": "/"}

    async def post_on_a_new_connection(number: int) -> int:
        async with httpx.AsyncClient() as http:
            response = await http.post(url, json={**body, "event_id": f"h{number}"})
        return response.status_code

    statuses = await asyncio.gather(*(post_on_a_new_connection(n) for n in range(40)))
    async with grpc_clients(api_settings.grpc_listen) as rpc:
        batch = await rpc.ingest.IngestBatch(
            IngestBatchRequest(
                events=[
                    Event(site_id="s", event_type="page_view", path="/", event_id=f"g{n}")
                    for n in range(10)
                ]
            )
        )

    assert statuses == [202] * 40
    assert batch.accepted_count == 10
    assert len(await events_in(js, stream.name)) == 50
    assert len(workers_of(ingest.pid)) == WORKERS


def sockets_on(port: int, state: str) -> set[int]:
    """Inodes of the IPv4 TCP sockets on local `port` in `state` (/proc/net/tcp's hex code)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            inodes.add(int(fields[9]))
    return inodes


def sockets_of(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


LISTEN, ESTABLISHED = "0A", "01"


async def test_connections_are_spread_over_the_workers(
    ingest: ChildProcess, api_settings: Settings
) -> None:
    port = api_settings.http_listen.port
    await eventually(lambda: asyncio.sleep(0, len(sockets_on(port, LISTEN))), WORKERS)
    clients = [httpx.AsyncClient() for _ in range(16)]
    try:
        for client in clients:
            await client.options(f"http://{api_settings.http_listen}/event")
        held = sockets_on(port, ESTABLISHED)
        by_worker = [len(held & sockets_of(pid)) for pid in workers_of(ingest.pid)]
    finally:
        for client in clients:
            await client.aclose()

    assert sum(by_worker) == 16
    assert all(by_worker)


async def test_sigterm_stops_every_process(ingest: ChildProcess, api_settings: Settings) -> None:
    await eventually(lambda: serving(f"http://{api_settings.http_listen}/event"), True)
    workers = workers_of(ingest.pid)

    status = ingest.stop()

    assert status == 0
    assert [pid for pid in workers if alive(pid)] == []


async def test_a_worker_that_dies_takes_the_others_down(
    ingest: ChildProcess, api_settings: Settings
) -> None:
    await eventually(lambda: serving(f"http://{api_settings.http_listen}/event"), True)
    first, second = workers_of(ingest.pid)

    os.kill(first, signal.SIGKILL)
    await eventually(lambda: asyncio.sleep(0, ingest.running), False)

    assert ingest.stop() == 1
    assert not alive(second)


async def test_a_second_instance_on_the_same_ports_is_refused(
    ingest: ChildProcess, api_settings: Settings
) -> None:
    await eventually(lambda: serving(f"http://{api_settings.http_listen}/event"), True)
    second = ChildProcess("a second analytics-ingest", signal.SIGTERM)
    second.spawn(
        [sys.executable, "-m", "ingest_server"],
        env={**settings_env(api_settings), "API_PROCESSES": str(WORKERS)},
    )

    await eventually(lambda: asyncio.sleep(0, second.running), False)

    assert second.stop() == 1
    assert ingest.running
