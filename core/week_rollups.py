"""Which weeks are rolled up (migration 0010: a week's path views and users added up from its
days, so that a long range reads a row per week), and the statements that roll up a site's
weeks, shared by a rebuild (writer.rebuild) and a change of the site's zone (report_server).

Only a week with MIN_WEEK_VIEWS views or more is rolled up (migration 0011). A quieter week's
days hold fewer path rows than that and a few bitmap chunks a day, which a range reads fast;
rolled up, such a week mostly copies its days, and most weeks are such weeks (the many small
sites), so rolling up every week cost disk for almost no time saved (docs/benchmarks.md,
"Weekly rollups of busy weeks only"). A busier week is read from its rollup, so a busy site's
ranges grow with their weeks, not with their events.
"""

from __future__ import annotations

MIN_WEEK_VIEWS = 1000

# $1 site_id, $2 first day, $3 last day, $4 the fewest views of a week rolled up: the weeks
# those days fall in rolled up from their days in one statement (one snapshot): the views of
# each week chosen, then its path views and users. The weeks' rows must be gone before, and the
# site's row locked, so that none of its events is stored meanwhile.
ROLL_UP_SITE_WEEKS = """
WITH rollups AS (
    INSERT INTO weekly_rollups (site_id, event_type, week, views)
    SELECT site_id, event_type, week_of(day), sum(views) FROM daily_totals
    WHERE site_id = $1 AND day >= week_of($2) AND day < week_of($3) + 7
    GROUP BY 1, 2, 3
    HAVING sum(views) >= $4
    RETURNING site_id, event_type, week
),
paths AS (
    INSERT INTO weekly_path_views (site_id, event_type, week, path, views)
    SELECT r.site_id, r.event_type, r.week, d.path, sum(d.views)
    FROM rollups AS r JOIN daily_path_views AS d
      ON d.site_id = r.site_id AND d.event_type = r.event_type
     AND d.day >= r.week AND d.day < r.week + 7
    GROUP BY 1, 2, 3, 4
)
INSERT INTO weekly_user_bitmaps (site_id, event_type, week, chunk, bits)
SELECT r.site_id, r.event_type, r.week, d.chunk, bit_or(d.bits)
FROM rollups AS r JOIN daily_user_bitmaps AS d
  ON d.site_id = r.site_id AND d.event_type = r.event_type
 AND d.day >= r.week AND d.day < r.week + 7
GROUP BY 1, 2, 3, 4
"""
