"""The report server's SQL. Every query reads the aggregate tables the writer keeps, never the
raw events, and reads a bounded number of rows: one day's totals and paths, per day of a range
(a day's totals, its paths, its user bitmaps), or, for all time, the all-time aggregates.

Unique users over several days: each site's users have small dense numbers (site_users), and
each (site, event type, day) keeps a bitmap of the numbers seen, in chunks of 8192 users. The
union of the days' bitmaps, chunk by chunk, counted, is the exact number of distinct users.
"""

# One day: its totals row already holds its distinct users (the writer adds the users each
# batch sets new bits for), so a day reads one row instead of OR-ing its bitmaps, and its
# paths need no summing.
# $1 site_id, $2 event_type, $3 day
DAY_TOTALS = """
SELECT views, users FROM daily_totals
WHERE site_id = $1 AND event_type = $2 AND day = $3
"""

# $1 site_id, $2 event_type, $3 day, $4 limit
DAY_TOP_PATHS = """
SELECT path, views FROM daily_path_views
WHERE site_id = $1 AND event_type = $2 AND day = $3
ORDER BY views DESC, path ASC
LIMIT $4
"""

# $1 site_id, $2 event_type, $3 first day, $4 last day (both included)
RANGE_TOTALS = """
SELECT
    (SELECT coalesce(sum(views), 0)::bigint FROM daily_totals
     WHERE site_id = $1 AND event_type = $2 AND day BETWEEN $3 AND $4) AS views,
    (SELECT coalesce(sum(bit_count(bits)), 0)::bigint
     FROM (SELECT bit_or(bits) AS bits FROM daily_user_bitmaps
           WHERE site_id = $1 AND event_type = $2 AND day BETWEEN $3 AND $4
           GROUP BY chunk) AS chunks) AS users
"""

# $1 site_id, $2 event_type, $3 first day, $4 last day (both included), $5 limit
RANGE_TOP_PATHS = """
SELECT path, sum(views)::bigint AS views FROM daily_path_views
WHERE site_id = $1 AND event_type = $2 AND day BETWEEN $3 AND $4
GROUP BY path
ORDER BY views DESC, path ASC
LIMIT $5
"""

# $1 site_id, $2 event_type
ALL_TIME_TOTALS = """
SELECT
    (SELECT coalesce(sum(views), 0)::bigint FROM daily_totals
     WHERE site_id = $1 AND event_type = $2) AS views,
    (SELECT coalesce(sum(bit_count(bits)), 0)::bigint FROM all_time_user_bitmaps
     WHERE site_id = $1 AND event_type = $2) AS users
"""

# $1 site_id, $2 event_type, $3 limit
ALL_TIME_TOP_PATHS = """
SELECT path, views FROM all_time_path_views
WHERE site_id = $1 AND event_type = $2
ORDER BY views DESC, path ASC
LIMIT $3
"""
