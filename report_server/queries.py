"""GetStats's SQL. In the site's time zone every query reads the aggregate tables the writer
keeps by the site's days, never the raw events, and reads a bounded number of rows: one day's
totals and paths, per day of a range (a day's totals; its paths and user bitmaps, or those of
its week when the range holds the whole week), or, for all time, the all-time aggregates. Days
of another zone are counted from the events (ZONED_STATS).

Each answer is one statement, so that its totals and its top paths are read from one snapshot
(two statements could see a writer's commit between them) in one round trip. It returns one
row per top path, each with the totals (total_views, unique_users), or, where no path has
views, one row of the totals with a NULL path.

Unique users over several days: each site's users have small dense numbers (site_users), and
each (site, event type, day) keeps a bitmap of the numbers seen, in chunks of 8192 users. The
union of the days' bitmaps, chunk by chunk, counted, is the exact number of distinct users.
"""


def _answer(totals: str, top_paths: str, common: str = "") -> str:
    """One statement for an answer: `totals`, one row of total_views and unique_users, joined
    to `top_paths`, the rows of path and views; `common`, WITH queries both may read."""
    return f"""{common}
SELECT totals.total_views, totals.unique_users, paths.path, paths.views
FROM ({totals}) AS totals
LEFT JOIN ({top_paths}) AS paths ON true
ORDER BY paths.views DESC, paths.path ASC
"""


# One day: its totals row already holds its distinct users (the writer adds the users each
# batch sets new bits for), so a day reads one row instead of OR-ing its bitmaps, and its
# paths need no summing.
# $1 site_id, $2 event_type, $3 day, $4 limit
DAY_STATS = _answer(
    totals="""
    SELECT coalesce(sum(views), 0)::bigint AS total_views,
           coalesce(sum(users), 0)::bigint AS unique_users
    FROM daily_totals
    WHERE site_id = $1 AND event_type = $2 AND day = $3""",
    top_paths="""
    SELECT path, views FROM daily_path_views
    WHERE site_id = $1 AND event_type = $2 AND day = $3
    ORDER BY views DESC, path ASC
    LIMIT $4""",
)

# A range reads each of its whole weeks from the week's rollups (weekly_path_views and
# weekly_user_bitmaps) if the views they add up to (weekly_rollups) are the week's days' totals:
# a row per path and a bitmap per chunk instead of seven. Its other days (at its ends, and the
# whole weeks not rolled up or given events since) it reads from the daily tables. Migration
# 0010 says why a rollup that adds up is exact.
# $1 site_id, $2 event_type, $3 first day, $4 last day (both included), $5 limit, $6 the first
# whole week's Monday, $7 the Monday after the last whole week ($6 = $7 = $4 + 1: none)
RANGE_STATS = _answer(
    common="""
WITH rolled_up AS (
    SELECT week FROM (
        SELECT week, views::numeric AS views FROM weekly_rollups
        WHERE site_id = $1 AND event_type = $2 AND week >= $6 AND week < $7
    ) AS rollups
    JOIN (
        SELECT week_of(day) AS week, sum(views) AS views FROM daily_totals
        WHERE site_id = $1 AND event_type = $2 AND day >= $6 AND day < $7
        GROUP BY 1
    ) AS days USING (week, views)
),
other_days AS (
    SELECT array_agg(day::date) AS days
    FROM generate_series($3::date, $4::date, interval '1 day') AS day
    WHERE week_of(day::date) NOT IN (SELECT week FROM rolled_up)
)""",
    totals="""
    SELECT
        (SELECT coalesce(sum(views), 0)::bigint FROM daily_totals
         WHERE site_id = $1 AND event_type = $2 AND day BETWEEN $3 AND $4) AS total_views,
        (SELECT coalesce(sum(bit_count(bits)), 0)::bigint
         FROM (SELECT bit_or(bits) AS bits
               FROM (SELECT chunk, bits FROM weekly_user_bitmaps
                     WHERE site_id = $1 AND event_type = $2
                       AND week IN (SELECT week FROM rolled_up)
                     UNION ALL
                     SELECT chunk, bits FROM daily_user_bitmaps
                     WHERE site_id = $1 AND event_type = $2
                       AND day = ANY ((SELECT days FROM other_days)::date[])) AS counted
               GROUP BY chunk) AS chunks) AS unique_users""",
    top_paths="""
    SELECT path, sum(views)::bigint AS views
    FROM (
        SELECT path, views FROM weekly_path_views
        WHERE site_id = $1 AND event_type = $2 AND week IN (SELECT week FROM rolled_up)
        UNION ALL
        SELECT path, views FROM daily_path_views
        WHERE site_id = $1 AND event_type = $2
          AND day = ANY ((SELECT days FROM other_days)::date[])
    ) AS counted
    GROUP BY path
    ORDER BY views DESC, path ASC
    LIMIT $5""",
)

# All time's total is its paths' views added up (each event is counted under one path), read in
# the scan that ranks them: the site's paths, however many days it has stored.
# $1 site_id, $2 event_type, $3 limit
ALL_TIME_STATS = _answer(
    common="""
WITH paths AS MATERIALIZED (
    SELECT path, views FROM all_time_path_views WHERE site_id = $1 AND event_type = $2
)""",
    totals="""
    SELECT
        (SELECT coalesce(sum(views), 0)::bigint FROM paths) AS total_views,
        (SELECT coalesce(sum(bit_count(bits)), 0)::bigint FROM all_time_user_bitmaps
         WHERE site_id = $1 AND event_type = $2) AS unique_users""",
    top_paths="""
    SELECT path, views FROM paths
    ORDER BY views DESC, path ASC
    LIMIT $3""",
)

# The summary of days of another zone than the site's, which the aggregates (kept by the
# site's days) cannot give: counted from the events between the zone's day boundaries.
# $1 site_id, $2 event_type, $3 first instant, $4 end instant (excluded), $5 limit
ZONED_STATS = """
WITH selected AS (
    SELECT path, user_id FROM events
    WHERE site_id = $1 AND event_type = $2 AND occurred_at >= $3 AND occurred_at < $4
)
SELECT totals.total_views, totals.unique_users, paths.path, paths.views
FROM (SELECT count(*) AS total_views, count(DISTINCT user_id) AS unique_users FROM selected)
     AS totals
LEFT JOIN (
    SELECT path, count(*) AS views FROM selected
    GROUP BY path
    ORDER BY views DESC, path ASC
    LIMIT $5
) AS paths ON true
ORDER BY paths.views DESC, paths.path ASC
"""
