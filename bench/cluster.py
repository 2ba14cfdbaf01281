"""The stack under test, started the way production starts it: embedded NATS and PostgreSQL
(durable settings), and each service as its own process (`python -m ingest_server`,
`python -m writer`, `python -m report_server`) configured only by environment variables.

Every service process's peak resident memory (VmHWM) is read just before it is stopped and the
largest value seen per service is kept.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from bench.cpu import PidGroup, find_process, process_tree
from core.settings import Address, Settings
from devstack.embedded import EmbeddedNats, EmbeddedPostgres, accepts_connections, free_port

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
ROOT = Path(__file__).resolve().parent.parent

# The bench sends, reads and registers without keys or tokens, as the development stack does;
# bench.access_cost measures what checking them costs a request.
OPEN_ACCESS = {
    "INGEST_OPEN": "1",
    "REPORTS_OPEN": "1",
    "ADMIN_OPEN": "1",
    "KEYLESS_BACKFILL_DAYS": "36500",
}


def _setting_names() -> frozenset[str]:
    """The environment variables the services read: whatever Settings.from_env asks for."""
    asked: set[str] = set()

    class Recorder(dict[str, str]):
        def get(self, key: str, default: object = None) -> Any:
            asked.add(key)
            return default

    Settings.from_env(Recorder())
    return frozenset(asked)


SETTINGS = _setting_names()


class BenchError(RuntimeError):
    """Something the benchmark needs did not work; the message says what."""


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size (VmHWM) in MiB, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def _dying_with_us(argv: list[str]) -> list[str]:
    """`argv` run through util-linux's setpriv so that the kernel sends it SIGTERM when the
    benchmark dies (no Python between fork and exec: the harness runs gRPC threads)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


@dataclass
class PeakMemory:
    """The largest VmHWM seen per service name, in MiB."""

    peaks: dict[str, float] = field(default_factory=dict)

    def record(self, name: str, mib: float | None) -> None:
        if mib is not None:
            self.peaks[name] = max(mib, self.peaks.get(name, 0.0))


class Process:
    """One child process: own session, output to a log file, stopped with SIGTERM (then
    SIGKILL), its peak RSS recorded in `memory` under `name` when it stops."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        log_path: Path,
        memory: PeakMemory,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._memory = memory
        self._log: IO[bytes] = log_path.open("ab")
        self._popen = subprocess.Popen(
            _dying_with_us(argv),
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self._popen.pid

    def check_alive(self) -> None:
        if self._popen.poll() is not None:
            raise BenchError(
                f"{self.name} exited with status {self._popen.returncode}; "
                f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
            )

    def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not ready():
            self.check_alive()
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"{self.name}: {what} within {START_TIMEOUT_SECONDS:.0f}s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._popen.poll() is None:
            # With API_PROCESSES, the workers are its children: the largest of them counts.
            for pid in process_tree(self._popen.pid):
                self._memory.record(self.name, peak_rss_mb(pid))
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        self._log.close()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class ApiService:
    process: Process
    grpc: Address
    http: Address


class Cluster:
    """NATS, PostgreSQL and the service processes, in a temporary directory removed on exit.

    PostgreSQL runs with its production settings (fsync, synchronous_commit and full-page
    writes on) unless `durable` is False.
    """

    def __init__(self, *, durable: bool = True) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="analytics-bench-"))
        self.root.chmod(0o755)  # PostgreSQL runs as `nobody` when we are root
        self.memory = PeakMemory()
        self.nats = EmbeddedNats(self.root / "nats")
        self.postgres = EmbeddedPostgres(self.root / "postgres", durable=durable)
        self._processes: list[Process] = []

    def __enter__(self) -> Self:
        try:
            self.nats.start()
            self.postgres.start()
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(
        self, exc: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        self.postgres.stop()
        self.nats.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def save_logs(self, into: Path) -> None:
        """Copy every process's log (services, NATS, PostgreSQL) into `into`, replacing the
        previous run's."""
        shutil.rmtree(into, ignore_errors=True)
        into.mkdir(parents=True)
        for log in self.root.glob("**/*.log"):
            shutil.copyfile(log, into / log.name)

    def service_env(self, database_url: str, extra: Mapping[str, str] = {}) -> dict[str, str]:
        """Our environment without any service setting of its own (so a NATS_URL or
        WRITER_BATCH_SIZE exported in the shell does not leak in), plus ours and `extra`."""
        env = {name: value for name, value in os.environ.items() if name not in SETTINGS}
        env.update(
            NATS_URL=self.nats.url,
            DATABASE_URL=database_url,
            PYTHONUNBUFFERED="1",
            **OPEN_ACCESS,
        )
        env.update(extra)
        return env

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        process = Process(
            name, argv, env=env, log_path=self.root / f"{name}.log", memory=self.memory
        )
        self._processes.append(process)
        return process

    def stop(self, process: Process) -> None:
        process.stop()
        if process in self._processes:
            self._processes.remove(process)

    def start_api(
        self, name: str, module: str, database_url: str, extra: Mapping[str, str] = {}
    ) -> ApiService:
        """`python -m <module>` serving gRPC and HTTP on free ports; returns once both listen."""
        grpc = Address("127.0.0.1", free_port())
        http = Address("127.0.0.1", free_port())
        env = self.service_env(
            database_url, {**extra, "GRPC_LISTEN": str(grpc), "HTTP_LISTEN": str(http)}
        )
        process = self.spawn(name, [sys.executable, "-m", module], env)
        process.wait_until(
            lambda: accepts_connections(http.port) and accepts_connections(grpc.port),
            "did not listen",
        )
        return ApiService(process, grpc, http)

    def cpu_groups(self) -> dict[str, PidGroup]:
        """Process groups for bench.cpu: each service, NATS, and PostgreSQL."""
        groups: dict[str, PidGroup] = {
            name: functools.partial(self._pids_of, name)
            for name in ("ingest", "raw-asgi", "writer", "report")
        }
        groups["NATS"] = self._nats_pids
        groups["PostgreSQL"] = self._postgres_pids
        return groups

    def _pids_of(self, name: str) -> list[int]:
        """The service's process and its children (its workers, with API_PROCESSES)."""
        return [
            pid
            for process in self._processes
            if process.name == name
            for pid in process_tree(process.pid)
        ]

    def _nats_pids(self) -> list[int]:
        pid = find_process(str(self.nats.root / "jetstream"))
        return [pid] if pid is not None else []

    def _postgres_pids(self) -> list[int]:
        try:
            postmaster = int((self.postgres.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return process_tree(postmaster)

    def start_writer(self, database_url: str, extra: Mapping[str, str] = {}) -> Process:
        return self.spawn(
            "writer", [sys.executable, "-m", "writer"], self.service_env(database_url, extra)
        )
