-- Browsers: the origins a site's pages may send from, what the ingest server derives from a
-- browser's request (never the raw user agent or IP), and the events it dropped.

-- Origins ("https://example.com") or host names ("example.com"); empty: any.
ALTER TABLE sites ADD COLUMN allowed_origins text[] NOT NULL DEFAULT '{}';

-- NULL for events that came without a browser's request (gRPC, servers over HTTP) and for
-- events stored before.
ALTER TABLE events
    ADD COLUMN visitor_id      bigint,  -- the day's cookie-less visitor, see README "Privacy"
    ADD COLUMN browser         text,
    ADD COLUMN os              text,
    ADD COLUMN device          text,    -- desktop, mobile, tablet
    ADD COLUMN referrer_host   text,
    ADD COLUMN referrer_source text,    -- search, social, direct, other
    ADD COLUMN utm_source      text,
    ADD COLUMN utm_medium      text,
    ADD COLUMN utm_campaign    text,
    ADD COLUMN utm_term        text,
    ADD COLUMN utm_content     text,
    ADD COLUMN country         text;    -- ISO 3166-1 alpha-2

-- Events the ingest servers dropped, by site, day (in the site's time zone when dropped) and
-- reason. They arrive as counts per window of an ingest process; each window is added once.
CREATE TABLE filtered_traffic (
    site_id text COLLATE "C" NOT NULL,
    day     date NOT NULL,
    reason  text COLLATE "C" NOT NULL,
    count   bigint NOT NULL,
    PRIMARY KEY (site_id, day, reason)
);

CREATE TABLE filtered_traffic_windows (
    window_id text COLLATE "C" PRIMARY KEY,
    added_at  timestamptz NOT NULL DEFAULT now()
);
