"""Ingest keys, read tokens and admin tokens, as the AdminService sees them: create, list,
revoke, rotate (core.access says what each allows and how secrets are made and kept).

PostgreSQL holds every credential (its secret's SHA-256 only); the CREDENTIALS_BUCKET holds the
grant of each valid one under its hash, which every server watches: a credential made or
revoked here is put or deleted there before the call answers, and reaches the other servers
within moments. Every SITES_RECONCILE_INTERVAL the bucket is compared with PostgreSQL, which
heals a change lost to a NATS outage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import nats.errors
from asyncpg.pool import PoolConnectionProxy
from nats.js.kv import KeyValue

from core.access import (
    ADMIN_TOKEN,
    INGEST_KEY,
    KINDS,
    READ_TOKEN,
    Grant,
    credential_bucket,
    new_credential_id,
    new_secret,
    secret_hash,
)
from core.database import POSTGRES_UNAVAILABLE, create_pool, reachable
from core.errors import FieldViolation, InvalidArgument, NotFound, Unavailable
from core.events import site_id_violations
from core.kv_watch import WatchedBucket, make_bucket_hold, reconciling
from core.nats_connection import close_nats, connect_nats
from core.retry import describe
from core.schema import wait_for_schema
from core.settings import Settings
from core.sites import MAX_NAME_LENGTH
from report_server.credential_queries import (
    CREATE_CREDENTIAL,
    LIST_CREDENTIALS,
    LOCK_CREDENTIAL,
    REVOKE_ADMIN_TOKENS_NAMED,
    REVOKE_CREDENTIAL,
    VALID_GRANTS,
)

logger = logging.getLogger(__name__)
_PASSING: tuple[type[BaseException], ...] = (*POSTGRES_UNAVAILABLE, nats.errors.Error, TimeoutError)
MAX_SITES = 1000


@dataclass(frozen=True)
class Credential:
    credential_id: str
    kind: str
    name: str
    site_ids: tuple[str, ...]
    all_sites: bool
    created_at: datetime
    revoked_at: datetime | None
    replaces: str


@dataclass(frozen=True)
class Created:
    credential: Credential
    secret: str  # shown this once


class CredentialRegistry:
    def __init__(
        self,
        pool: asyncpg.Pool,
        kv: KeyValue,
        grants: WatchedBucket[Grant],
        interval: float,
    ) -> None:
        """`grants`: this process's own copy of the bucket, which takes each change made here
        at once."""
        self._pool = pool
        self._kv = kv
        self._grants = grants
        self._interval = interval

    async def create(
        self, kind: str, name: str = "", site_ids: Sequence[str] = (), all_sites: bool = False
    ) -> Created:
        """Raises InvalidArgument, Unavailable."""
        sites = tuple(dict.fromkeys(site_ids))
        if violations := _violations(kind, name, sites, all_sites):
            raise InvalidArgument(violations)
        async with reachable(), self._pool.acquire() as connection:
            return await self._made(connection, kind, name, sites, all_sites)

    async def list(self, kind: str = "") -> list[Credential]:
        if kind and kind not in KINDS:
            raise InvalidArgument.single("kind", f"must be one of {', '.join(KINDS)}, or empty")
        async with reachable():
            rows = await self._pool.fetch(LIST_CREDENTIALS, kind)
        return [_credential(row) for row in rows]

    async def revoke(self, credential_id: str) -> Credential:
        """Revoked at once on this server, within moments on the others. Raises NotFound,
        Unavailable (then the revocation is recorded but perhaps not yet told to the other
        servers: retry it, or the next reconcile will)."""
        async with reachable():
            row = await self._pool.fetchrow(REVOKE_CREDENTIAL, credential_id)
        if row is None:
            raise _not_found(credential_id)
        await self._withdraw(row["secret_sha256"], strict=True)
        return _credential(row)

    async def rotate(self, credential_id: str) -> Created:
        """A credential like the one named, with a new secret; the old one revoked."""
        async with reachable(), self._pool.acquire() as connection, connection.transaction():
            old = await connection.fetchrow(LOCK_CREDENTIAL, credential_id)
            if old is None:
                raise _not_found(credential_id)
            if old["revoked_at"] is not None:
                raise InvalidArgument.single(
                    "credential_id", f"{credential_id} is revoked: create a new one instead"
                )
            await connection.execute(REVOKE_CREDENTIAL, credential_id)
            created = await self._made(
                connection,
                old["kind"],
                old["name"],
                tuple(old["site_ids"]),
                old["all_sites"],
                replaces=credential_id,
                publish=False,
            )
        await self._grant(created)
        # Not strict: the new secret must reach the caller, who could not ask for it again; a
        # withdrawal NATS does not confirm is made by the next reconcile.
        await self._withdraw(old["secret_sha256"], strict=False)
        return created

    async def bootstrap_admin(self, name: str) -> Created:
        """A new admin token named `name`, the earlier ones of that name revoked: how a
        deployment gets its first admin token (`analytics-admin bootstrap`, `make run`)."""
        async with reachable(), self._pool.acquire() as connection, connection.transaction():
            replaced = await connection.fetch(REVOKE_ADMIN_TOKENS_NAMED, name)
            created = await self._made(connection, ADMIN_TOKEN, name, (), False, publish=False)
        await self._grant(created)
        for row in replaced:
            await self._withdraw(row["secret_sha256"], strict=False)
        return created

    async def _made(
        self,
        connection: PoolConnectionProxy[asyncpg.Record],
        kind: str,
        name: str,
        site_ids: tuple[str, ...],
        all_sites: bool,
        *,
        replaces: str | None = None,
        publish: bool = True,
    ) -> Created:
        secret = new_secret(kind)
        row = await connection.fetchrow(
            CREATE_CREDENTIAL,
            new_credential_id(),
            kind,
            name,
            list(site_ids),
            all_sites,
            secret_hash(secret),
            replaces,
        )
        assert row is not None
        created = Created(_credential(row), secret)
        if publish:
            await self._grant(created)
        logger.info("made %s %s", kind.replace("_", " "), created.credential.credential_id)
        return created

    async def _grant(self, created: Created) -> None:
        """Tell the servers of a new credential; a failure is logged (the next reconcile puts
        it), so a new credential may take up to that interval to work."""
        credential = created.credential
        digest = secret_hash(created.secret)
        grant = _grant_of(credential, digest)
        try:
            revision = await self._kv.put(digest, grant.to_json())
        except (nats.errors.Error, TimeoutError) as error:
            logger.warning(
                "could not publish credential %s (the next reconcile will): %s",
                credential.credential_id,
                describe(error),
            )
            return
        self._grants.apply(digest, grant, revision)

    async def _withdraw(self, digest: str, *, strict: bool) -> None:
        """Tell the servers a credential is revoked; `strict`: Unavailable if that fails."""
        try:
            await self._kv.delete(digest)
        except (nats.errors.Error, TimeoutError) as error:
            logger.warning("could not withdraw a revoked credential: %s", describe(error))
            if strict:
                raise Unavailable(
                    "revoked, but NATS did not confirm that the servers were told: retry"
                ) from None
            return
        self._grants.forget(digest)

    async def reconcile(self) -> int:
        """Make the bucket hold the grant of every valid credential, and nothing else; how
        many keys were put or deleted."""
        async with self._pool.acquire() as connection:
            rows = await connection.fetch(VALID_GRANTS)
        wanted = {
            row["secret_sha256"]: _grant_of(_credential(row), row["secret_sha256"]).to_json()
            for row in rows
        }
        return await make_bucket_hold(self._kv, wanted)

    async def run(self) -> None:
        """Reconcile at once and then every interval, until cancelled."""
        await reconciling(self.reconcile, self._interval, "credentials", _PASSING)


def _violations(
    kind: str, name: str, site_ids: tuple[str, ...], all_sites: bool
) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    if kind not in KINDS:
        violations.append(FieldViolation("kind", f"must be one of {', '.join(KINDS)}"))
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        violations.append(
            FieldViolation("name", f"must be printable, at most {MAX_NAME_LENGTH} characters")
        )
    if len(site_ids) > MAX_SITES:
        violations.append(FieldViolation("site_ids", f"must hold at most {MAX_SITES} sites"))
    for index, site_id in enumerate(site_ids[:MAX_SITES]):
        violations += site_id_violations(site_id, f"site_ids[{index}]")
    if kind == INGEST_KEY and (len(site_ids) != 1 or all_sites):
        violations.append(FieldViolation("site_ids", "an ingest key is for exactly one site"))
    elif kind == READ_TOKEN and bool(site_ids) == all_sites:
        violations.append(
            FieldViolation("site_ids", "a read token names its sites, or all_sites, not both")
        )
    elif kind == ADMIN_TOKEN and (site_ids or all_sites):
        violations.append(FieldViolation("site_ids", "an admin token covers every site"))
    return violations


def _credential(row: asyncpg.Record) -> Credential:
    return Credential(
        credential_id=row["credential_id"],
        kind=row["kind"],
        name=row["name"],
        site_ids=tuple(row["site_ids"]),
        all_sites=row["all_sites"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        replaces=row["replaces"] or "",
    )


def _grant_of(credential: Credential, digest: str) -> Grant:
    return Grant(
        credential.credential_id,
        credential.kind,
        credential.site_ids,
        credential.all_sites,
        digest,
    )


def _not_found(credential_id: str) -> NotFound:
    return NotFound(f"no credential {credential_id[:64]!r}")


async def bootstrap_admin_token(settings: Settings, name: str) -> Created:
    """A new admin token named `name` (those of that name before revoked), made straight in
    PostgreSQL and the bucket: the one credential nobody can ask the AdminService for, since
    it takes an admin token. Waits for the schema as the report server does."""
    nc = await connect_nats(settings, "analytics-admin")
    try:
        kv = await credential_bucket(
            nc.jetstream(), settings.credentials_bucket, settings.stream_replicas
        )
        pool = await create_pool(settings, max_size=1)
        try:
            await wait_for_schema(pool, "analytics-admin")
            grants = WatchedBucket(kv, Grant.from_entry, "credential")
            registry = CredentialRegistry(pool, kv, grants, settings.sites_reconcile_interval)
            return await registry.bootstrap_admin(name)
        finally:
            await pool.close()
    finally:
        await close_nats(nc)
