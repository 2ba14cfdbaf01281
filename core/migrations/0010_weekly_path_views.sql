-- Path views by week, so that a long range's top paths add up a row per path and week instead
-- of one per path and day: GetStats over 30 days reads its four or so whole weeks here and
-- only the days at its ends from daily_path_views (docs/benchmarks.md, "Weekly path views").
-- A week is seven of the site's days from a Monday (ISO 8601).
--
-- The writer does not keep these rows: an upsert per path and week in its statement would cost
-- it about a tenth more per event. The writer's storage upkeep rolls a week up from its days
-- once it is over (writer/storage.py), and again when events arrive for it later. A reader
-- trusts a (site, event type, week)'s rows only while their views add up to its days' totals
-- in daily_totals, which only grow: equal, no event of the week came after the rollup, so its
-- rows are its days' rows added up; otherwise the reader adds up the days instead. So a
-- rollup that is missing, late or out of date costs time, never a wrong number.

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

-- The upkeep finds a week's sites by its days: one entry per site, event type and day, made
-- when the writer counts the day's first event (its later updates leave the index alone).
CREATE INDEX daily_totals_by_day ON daily_totals (day);

-- The weeks over before this day, rolled up as the upkeep would.
INSERT INTO weekly_path_views (site_id, event_type, week, path, views)
SELECT site_id, event_type, week_of(day), path, sum(views)
FROM daily_path_views
WHERE week_of(day) + 7 < current_date
GROUP BY 1, 2, 3, 4;
