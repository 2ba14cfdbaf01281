-- Every stored event, once: the primary key on event_id is what makes storing idempotent.
CREATE TABLE events (
    event_id    text COLLATE "C" PRIMARY KEY,
    site_id     text COLLATE "C" NOT NULL,
    event_type  text COLLATE "C" NOT NULL,
    path        text COLLATE "C" NOT NULL,
    user_id     text COLLATE "C",                -- NULL for anonymous events
    occurred_at timestamptz NOT NULL,            -- the event's own timestamp
    referrer    text,
    properties  jsonb NOT NULL,
    received_at timestamptz NOT NULL,            -- when an ingest server received it
    stored_at   timestamptz NOT NULL DEFAULT now()
);

-- The aggregates reports read, kept in the same transaction as the events they count.
-- `day` is the UTC calendar day of occurred_at.
CREATE TABLE daily_totals (
    site_id    text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    day        date NOT NULL,
    views      bigint NOT NULL,                  -- events
    users      bigint NOT NULL,                  -- distinct non-NULL user_ids
    PRIMARY KEY (site_id, event_type, day)
);

CREATE TABLE daily_path_views (
    site_id    text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    day        date NOT NULL,
    path       text COLLATE "C" NOT NULL,
    views      bigint NOT NULL,
    PRIMARY KEY (site_id, event_type, day, path)
);

CREATE TABLE daily_users (
    site_id    text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    day        date NOT NULL,
    user_id    text COLLATE "C" NOT NULL,
    PRIMARY KEY (site_id, event_type, day, user_id)
);
