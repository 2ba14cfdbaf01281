-- Access: each site's ingest policy and report visibility, and the credentials (ingest keys,
-- read tokens, admin tokens) that open them. Only a secret's SHA-256 is stored.

-- 'browsers': a browser may send without a key (within the allowed origins), other callers
-- need an ingest key; 'key_required': every event needs one.
ALTER TABLE sites
    ADD COLUMN ingest_policy text NOT NULL DEFAULT 'browsers'
        CHECK (ingest_policy IN ('browsers', 'key_required')),
    ADD COLUMN report_visibility text NOT NULL DEFAULT 'private'
        CHECK (report_visibility IN ('private', 'public'));

CREATE TABLE credentials (
    credential_id text COLLATE "C" PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('ingest_key', 'read_token', 'admin_token')),
    name          text NOT NULL DEFAULT '',
    -- An ingest key's one site; a read token's sites (empty with all_sites).
    site_ids      text[] NOT NULL DEFAULT '{}',
    all_sites     boolean NOT NULL DEFAULT false,
    secret_sha256 text COLLATE "C" NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    -- The credential a rotation replaced (revoked when this one was made).
    replaces      text COLLATE "C" REFERENCES credentials (credential_id)
);
