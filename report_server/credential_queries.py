"""The credentials' SQL (core/migrations/0008_access.sql)."""

_COLUMNS = (
    "credential_id, kind, name, site_ids, all_sites, secret_sha256, created_at, revoked_at, "
    "replaces"
)

# $1 credential_id, $2 kind, $3 name, $4 site_ids, $5 all_sites, $6 secret_sha256, $7 replaces
CREATE_CREDENTIAL = f"""
INSERT INTO credentials (credential_id, kind, name, site_ids, all_sites, secret_sha256, replaces)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING {_COLUMNS}
"""

# $1 kind, or '' for every kind
LIST_CREDENTIALS = f"""
SELECT {_COLUMNS} FROM credentials WHERE $1 = '' OR kind = $1
ORDER BY created_at DESC, credential_id
"""

# $1 credential_id; locked until the transaction ends (a revoke and a rotate do not cross).
LOCK_CREDENTIAL = f"SELECT {_COLUMNS} FROM credentials WHERE credential_id = $1 FOR UPDATE"

# $1 credential_id; the row as it is after (revoked_at kept from a first revocation).
REVOKE_CREDENTIAL = f"""
UPDATE credentials SET revoked_at = coalesce(revoked_at, now()) WHERE credential_id = $1
RETURNING {_COLUMNS}
"""

# $1 name: the admin tokens of that name still valid (the development stack's, replaced at
# each start).
REVOKE_ADMIN_TOKENS_NAMED = f"""
UPDATE credentials SET revoked_at = now()
WHERE kind = 'admin_token' AND name = $1 AND revoked_at IS NULL
RETURNING {_COLUMNS}
"""

# What the servers are told of every valid credential (report_server.credentials).
VALID_GRANTS = f"SELECT {_COLUMNS} FROM credentials WHERE revoked_at IS NULL"
