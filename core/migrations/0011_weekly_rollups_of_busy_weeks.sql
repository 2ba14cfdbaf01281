-- Only a week with 1,000 views or more stays rolled up (core.week_rollups.MIN_WEEK_VIEWS says
-- why): most of the rollups 0010 made are of quieter weeks, which mostly copy their days
-- (docs/benchmarks.md, "Weekly rollups of busy weeks only"). A range reads those weeks from
-- their days, as it reads any week without a rollup, with the same numbers.
--
-- The busy weeks' rows are kept aside and the tables emptied, so that the quiet weeks' space
-- goes back to the file system at once (a DELETE would leave it to later rows, which are few).
-- A writer of the version before may roll quiet weeks up again until it is upgraded; the
-- upkeep of this version lets such a rollup go (writer.queries.ROLL_UP_WEEK).
CREATE TEMPORARY TABLE busy_rollups ON COMMIT DROP AS
    SELECT * FROM weekly_rollups WHERE views >= 1000;
CREATE TEMPORARY TABLE busy_path_views ON COMMIT DROP AS
    SELECT p.* FROM weekly_path_views AS p JOIN busy_rollups AS r
    ON p.site_id = r.site_id AND p.event_type = r.event_type AND p.week = r.week;
CREATE TEMPORARY TABLE busy_user_bitmaps ON COMMIT DROP AS
    SELECT b.* FROM weekly_user_bitmaps AS b JOIN busy_rollups AS r
    ON b.site_id = r.site_id AND b.event_type = r.event_type AND b.week = r.week;
TRUNCATE weekly_rollups, weekly_path_views, weekly_user_bitmaps;
INSERT INTO weekly_rollups SELECT * FROM busy_rollups;
INSERT INTO weekly_path_views SELECT * FROM busy_path_views;
INSERT INTO weekly_user_bitmaps SELECT * FROM busy_user_bitmaps;
