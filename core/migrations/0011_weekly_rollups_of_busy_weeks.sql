-- Only a week with 1,000 views or more stays rolled up (core.week_rollups.MIN_WEEK_VIEWS says
-- why): most of the rollups 0010 made are of quieter weeks, which mostly copy their days
-- (docs/benchmarks.md, "Weekly rollups of busy weeks only"). Their rows go; a range reads those
-- weeks from their days, as it reads any week without a rollup, with the same numbers. A writer
-- of the version before may roll such weeks up again until it is upgraded; they are read as
-- any rollup is.
WITH quiet AS (
    DELETE FROM weekly_rollups WHERE views < 1000
    RETURNING site_id, event_type, week
),
paths AS (
    DELETE FROM weekly_path_views AS p USING quiet AS q
    WHERE p.site_id = q.site_id AND p.event_type = q.event_type AND p.week = q.week
)
DELETE FROM weekly_user_bitmaps AS b USING quiet AS q
WHERE b.site_id = q.site_id AND b.event_type = q.event_type AND b.week = q.week;
