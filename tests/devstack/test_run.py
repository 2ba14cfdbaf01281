"""`make run`: the whole stack from one command, on embedded servers, stopped by Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.embedded import accepts_connections, free_port
from devstack.run import benchmarked
from tests.support.waiting import eventually

SEED_EVENT = {
    "site_id": "site-123",
    "event_type": "page_view",
    "path": "/home",
    "user_id": "u10",
    "timestamp": "2025-11-14T10:00:00Z",
}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="analytics-run-"))
    root.chmod(0o755)  # reachable by the user PostgreSQL runs as, when we are root
    yield root / "data"
    shutil.rmtree(root, ignore_errors=True)


class Stack:
    def __init__(self, data_dir: Path, *, http_port: int | None = None) -> None:
        self.http_port = http_port or free_port()
        self.grpc_port = free_port()
        self._env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("NATS_URL", "DATABASE_URL")
        } | {
            "DATA_DIR": str(data_dir),
            "HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            "GRPC_LISTEN": f"127.0.0.1:{self.grpc_port}",
        }
        self._popen: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self._popen = subprocess.Popen(
            [sys.executable, "-m", "devstack.run"],
            env=self._env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._popen.stdout is not None
        banner = ""
        while not banner.endswith("Press Ctrl-C to stop.\n"):
            line = self._popen.stdout.readline()
            assert line, f"analytics-run exited before it was ready:\n{banner}"
            banner += line
        assert f"HTTP      http://127.0.0.1:{self.http_port}" in banner
        assert accepts_connections(self.grpc_port)

    def run_until_exit(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devstack.run"],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def interrupt(self) -> int:
        assert self._popen is not None
        self._popen.send_signal(signal.SIGINT)
        status = self._popen.wait(timeout=60)
        assert self._popen.stdout is not None
        self._popen.stdout.close()
        return status


async def stats(client: httpx.AsyncClient) -> Any:
    response = await client.get("/stats", params={"site_id": "site-123", "date": "2025-11-14"})
    return response.json()


async def test_make_run_serves_the_seed_requests_and_keeps_data_across_restarts(
    data_dir: Path,
) -> None:
    stack = Stack(data_dir)
    expected = {
        "site_id": "site-123",
        "date": "2025-11-14",
        "start_date": "2025-11-14",
        "end_date": "2025-11-14",
        "total_views": 1,
        "unique_users": 1,
        "top_paths": [{"path": "/home", "views": 1}],
    }

    stack.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.http_port}") as client:
        assert (await client.post("/event", json=SEED_EVENT)).status_code == 202
        await eventually(lambda: stats(client), expected)
    assert stack.interrupt() == 0

    stack.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.http_port}") as client:
        assert await stats(client) == expected
    assert stack.interrupt() == 0
    assert not accepts_connections(stack.http_port)


def test_make_run_refuses_a_taken_http_port_before_starting_anything(
    data_dir: Path, held_port: int
) -> None:
    finished = Stack(data_dir, http_port=held_port).run_until_exit()

    assert finished.returncode == 1
    assert finished.stderr == (
        f"analytics-run: cannot listen on 127.0.0.1:{held_port} (HTTP_LISTEN): "
        "Address already in use; set HTTP_LISTEN to a free address\n"
    )
    assert finished.stdout == ""
    assert not data_dir.exists()


def test_make_run_starts_one_api_process_per_core() -> None:
    assert benchmarked(2) == {"API_PROCESSES": "2"}


def test_make_run_starts_one_api_process_where_the_cores_are_unknown() -> None:
    assert benchmarked(None) == {"API_PROCESSES": "1"}


def test_make_run_starts_no_more_api_processes_than_the_setting_allows() -> None:
    assert benchmarked(256) == {"API_PROCESSES": "64"}
