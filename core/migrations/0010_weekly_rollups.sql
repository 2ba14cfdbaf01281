-- Path views and user bitmaps by week, so that a long range adds up a row per path, and ORs a
-- bitmap per chunk, for each week instead of seven: GetStats over a range reads its whole weeks
-- here and only its other days from the daily tables (docs/benchmarks.md, "Weekly rollups").
-- A week is seven of the site's days from a Monday (ISO 8601).
--
-- The writer does not keep these rows: an upsert per path and week in its statement costs it
-- about a tenth more per event. The writer's storage upkeep rolls a week up from its days once
-- it is over (writer/storage.py), and again when events arrive for it later: the paths and the
-- bitmaps of a (site, event type, week), and in weekly_rollups the views they add up to, in one
-- statement, from one snapshot. A reader trusts them only while those views equal the week's
-- days' totals in daily_totals, which only grow: equal, no event of the week came after the
-- rollup (an event adds a view; only events set bits), so its rows are its days' rows added up
-- and ORed; otherwise the reader reads the days instead. So a rollup that is missing, late or
-- out of date costs time, never a wrong number.

-- The Monday a day's week starts on.
CREATE FUNCTION week_of(day date) RETURNS date
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN date_trunc('week', day::timestamp)::date;

CREATE TABLE weekly_path_views (
    site_id    text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    week       date NOT NULL CHECK (extract(isodow FROM week) = 1),
    path       text COLLATE "C" NOT NULL,
    views      bigint NOT NULL,
    PRIMARY KEY (site_id, event_type, week, path)
);
COMMENT ON COLUMN weekly_path_views.week IS
    'the Monday the week starts on, a calendar day in the site''s time zone';

-- One row per (site, event type, week) rolled up: the views its rollup adds up to, which a
-- reader checks against the week's daily_totals without reading the rollup's rows.
CREATE TABLE weekly_rollups (
    site_id    text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    week       date NOT NULL CHECK (extract(isodow FROM week) = 1),
    views      bigint NOT NULL,
    PRIMARY KEY (site_id, event_type, week)
);

CREATE TABLE weekly_user_bitmaps (
    site_id    text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    week       date NOT NULL CHECK (extract(isodow FROM week) = 1),
    chunk      integer NOT NULL,
    bits       bit(8192) NOT NULL,               -- the week's days' daily_user_bitmaps ORed
    PRIMARY KEY (site_id, event_type, week, chunk)
);

-- The upkeep finds a week's sites by its days: one entry per site, event type and day, made
-- when the writer counts the day's first event (its later updates leave the index alone).
CREATE INDEX daily_totals_by_day ON daily_totals (day);

-- The weeks over before this day, rolled up as the upkeep would, in one statement: paths,
-- bitmaps and the views they add up to from one snapshot. A writer of the version before may go on storing meanwhile: no
-- writer keeps these tables, and a week it gives events to later reads from its days.
WITH paths AS (
    INSERT INTO weekly_path_views (site_id, event_type, week, path, views)
    SELECT site_id, event_type, week_of(day), path, sum(views)
    FROM daily_path_views
    WHERE week_of(day) + 7 < current_date
    GROUP BY 1, 2, 3, 4
    RETURNING site_id, event_type, week, views
),
rollups AS (
    INSERT INTO weekly_rollups (site_id, event_type, week, views)
    SELECT site_id, event_type, week, sum(views) FROM paths
    GROUP BY 1, 2, 3
)
INSERT INTO weekly_user_bitmaps (site_id, event_type, week, chunk, bits)
SELECT site_id, event_type, week_of(day), chunk, bit_or(bits)
FROM daily_user_bitmaps
WHERE week_of(day) + 7 < current_date
GROUP BY 1, 2, 3, 4;
