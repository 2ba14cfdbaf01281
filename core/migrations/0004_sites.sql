-- The registry of sites: a display name and the time zone a site's reports use by default.
-- The writer registers a site the first time it stores one of its events (its id as its name,
-- UTC), so every site that has events has a row.
CREATE TABLE sites (
    site_id    text COLLATE "C" PRIMARY KEY,
    name       text NOT NULL,
    time_zone  text NOT NULL DEFAULT 'UTC',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The sites stored so far, created on their first day (daily_totals is small; events is not).
INSERT INTO sites (site_id, name, created_at, updated_at)
SELECT site_id, site_id, min(day)::timestamptz, min(day)::timestamptz
FROM daily_totals
GROUP BY site_id;

-- From now on the daily aggregates' `day` is the calendar day in the site's time zone; every
-- site so far is in UTC, where that is the day they hold.
COMMENT ON COLUMN daily_totals.day IS 'the calendar day in the site''s time zone';
COMMENT ON COLUMN daily_path_views.day IS 'the calendar day in the site''s time zone';
COMMENT ON COLUMN daily_user_bitmaps.day IS 'the calendar day in the site''s time zone';
