"""Who may do what: the credentials (ingest keys, read tokens, admin tokens), how their secrets
are made, stored and recognised, and the rules every door applies with them.

A secret is a recognisable prefix (`anik_` ingest key, `anrt_` read token, `anat_` admin token,
so that a leaked one is easy to spot and to grep for) and 32 random bytes from `secrets`
(256 bits, URL-safe base64). It is shown once, when made; only its SHA-256 is stored (in
PostgreSQL, and in the CREDENTIALS_BUCKET key-value bucket the servers watch). A fast hash is
enough here: a slow one (bcrypt, Argon2) protects low-entropy passwords from guessing, but
nobody can guess 256 random bits, from a hash or otherwise, and a slow hash would cost
milliseconds per request.

A credential is found by the SHA-256 of the secret presented, as a dictionary key: how long the
lookup takes can at most tell an attacker something about the hash of what they sent, never
about a valid secret. The hash stored with the grant found is then compared with the presented
one by `hmac.compare_digest`, in constant time.
Secrets are never logged: only a credential's id (`cred_...`) is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from core.errors import PermissionDenied, Unauthenticated

INGEST_KEY = "ingest_key"
READ_TOKEN = "read_token"
ADMIN_TOKEN = "admin_token"
KINDS = (INGEST_KEY, READ_TOKEN, ADMIN_TOKEN)
PREFIXES = {INGEST_KEY: "anik_", READ_TOKEN: "anrt_", ADMIN_TOKEN: "anat_"}
SECRET_BYTES = 32

# A site's ingest policy: browsers may send without a key (within the allowed origins), or
# every event needs one.
INGEST_BROWSERS = "browsers"
INGEST_KEY_REQUIRED = "key_required"
INGEST_POLICIES = (INGEST_BROWSERS, INGEST_KEY_REQUIRED)
# A site's report visibility.
PRIVATE = "private"
PUBLIC = "public"
VISIBILITIES = (PRIVATE, PUBLIC)


def new_secret(kind: str) -> str:
    """A new secret of `kind`: its prefix and 256 random bits."""
    return PREFIXES[kind] + secrets.token_urlsafe(SECRET_BYTES)


def new_credential_id() -> str:
    """The public name of a credential, shown in lists and logs (never the secret)."""
    return "cred_" + secrets.token_hex(8)


def secret_hash(secret: str) -> str:
    """What is stored of a secret: its SHA-256, hex (also its key in the bucket)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Grant:
    """What a valid credential allows: its kind and sites (an ingest key: one site; a read
    token: its sites, or all; an admin token: everything). What the servers keep in memory."""

    credential_id: str
    kind: str
    site_ids: tuple[str, ...] = ()
    all_sites: bool = False
    # The SHA-256 of its secret, hex: the bucket's key for it (not in its JSON value).
    secret_sha256: str = ""

    def covers(self, site_id: str) -> bool:
        return self.kind == ADMIN_TOKEN or self.all_sites or site_id in self.site_ids

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "credential_id": self.credential_id,
                "kind": self.kind,
                "site_ids": list(self.site_ids),
                "all_sites": self.all_sites,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_entry(cls, key: str, data: bytes) -> Grant:
        """The grant the bucket holds under `key` (its secret's SHA-256); ValueError for bytes
        that are not a grant."""
        value: Any = json.loads(data)
        if not isinstance(value, dict):
            raise ValueError("a grant is a JSON object")
        credential_id, kind = value.get("credential_id"), value.get("kind")
        site_ids, all_sites = value.get("site_ids", []), value.get("all_sites", False)
        if not (
            isinstance(credential_id, str)
            and kind in KINDS
            and isinstance(site_ids, list)
            and all(isinstance(site, str) for site in site_ids)
            and isinstance(all_sites, bool)
        ):
            raise ValueError("a grant has a credential_id, a kind, site_ids and all_sites")
        return cls(credential_id, kind, tuple(site_ids), all_sites, key)


# What a door tells a caller; the same words on both doors.
MAX_SHOWN_SITE_ID = 128
MALFORMED = "the authorization must be 'Bearer <secret>'"
UNKNOWN = "the credential presented is not valid (unknown, mistyped or revoked)"


def identify(secret: str | None, grants: Mapping[str, Grant]) -> Grant | None:
    """The grant of the secret presented; None when none was. Unauthenticated for a secret
    that is not a valid credential: presenting one that is wrong or revoked is refused on
    every route that checks access, even one that needs none."""
    if secret is None:
        return None
    digest = secret_hash(secret)
    grant = grants.get(digest)
    if grant is None or not hmac.compare_digest(grant.secret_sha256, digest):
        raise Unauthenticated(UNKNOWN)
    return grant


def require_admin(grant: Grant | None, *, admin_open: bool = False) -> None:
    """Managing sites, keys and tokens takes the admin token (unless ADMIN_OPEN)."""
    if grant is None:
        if admin_open:
            return
        raise Unauthenticated("this needs the admin token (Authorization: Bearer anat_...)")
    if grant.kind != ADMIN_TOKEN:
        raise PermissionDenied(f"a {_named(grant.kind)} cannot manage sites, keys or tokens")


def require_read(grant: Grant | None, site_id: str, *, public: bool) -> None:
    """Reading a site's reports takes a read token covering it (or the admin token), unless the
    site's reports are public (or REPORTS_OPEN made them all so)."""
    if grant is None:
        if public:
            return
        raise Unauthenticated(
            f"the reports of site {site_id!r} are private: send a read token "
            "(Authorization: Bearer anrt_...)"
        )
    if grant.kind == INGEST_KEY:
        if public:
            return
        raise PermissionDenied("an ingest key cannot read reports; use a read token")
    if not grant.covers(site_id) and not public:
        raise PermissionDenied(f"this read token does not cover site {site_id!r}")


@dataclass(frozen=True)
class IngestAccess:
    """What a request to the ingest service may send: with a key, its site's events (any
    time back to the earliest allowed); without one, the events of sites that let browsers
    send (and, with INGEST_OPEN, any caller), within the backfill window."""

    grant: Grant | None
    browser: bool  # the request came from a page (it had an Origin header)
    ingest_open: bool

    def check(self, site_id: str, policy: str) -> None:
        """Raise for an event of `site_id` (whose ingest policy is `policy`) this request may not
        send. The site_id is not yet validated: it is named in messages cut short."""
        grant = self.grant
        shown = site_id[:MAX_SHOWN_SITE_ID]
        if grant is None:
            if policy == INGEST_KEY_REQUIRED:
                raise Unauthenticated(
                    f"site {shown!r} requires an ingest key (Authorization: Bearer anik_...)"
                )
            if not (self.browser or self.ingest_open):
                raise Unauthenticated(
                    "events sent from outside a browser need an ingest key "
                    "(Authorization: Bearer anik_...)"
                )
            return
        if grant.kind != INGEST_KEY:
            raise PermissionDenied(f"a {_named(grant.kind)} cannot send events; use an ingest key")
        if site_id not in grant.site_ids:
            raise PermissionDenied(f"this ingest key is not for site {shown!r}")

    @property
    def keyed(self) -> bool:
        return self.grant is not None


def _named(kind: str) -> str:
    return kind.replace("_", " ")


async def credential_bucket(js: JetStreamContext, bucket: str, replicas: int = 1) -> KeyValue:
    """The bucket of grants by secret hash, created if missing (both services may create
    it). It holds hashes only; a revoked credential's key is deleted."""
    config = KeyValueConfig(bucket=bucket, history=1, replicas=replicas, storage=StorageType.FILE)
    return await js.create_key_value(config)
