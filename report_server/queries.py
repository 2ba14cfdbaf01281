"""The report server's SQL. Every query reads the aggregate tables the writer keeps, never the
raw events."""

# $1 site_id, $2 event_type, $3 first day, $4 last day (both included)
RANGE_TOTALS = """
SELECT
    (SELECT coalesce(sum(views), 0)::bigint FROM daily_totals
     WHERE site_id = $1 AND event_type = $2 AND day BETWEEN $3 AND $4) AS views,
    (SELECT count(DISTINCT user_id) FROM daily_users
     WHERE site_id = $1 AND event_type = $2 AND day BETWEEN $3 AND $4) AS users
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
    (SELECT count(DISTINCT user_id) FROM daily_users
     WHERE site_id = $1 AND event_type = $2) AS users
"""

# $1 site_id, $2 event_type, $3 limit
ALL_TIME_TOP_PATHS = """
SELECT path, sum(views)::bigint AS views FROM daily_path_views
WHERE site_id = $1 AND event_type = $2
GROUP BY path
ORDER BY views DESC, path ASC
LIMIT $3
"""
