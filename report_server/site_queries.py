"""The site registry's SQL."""

_COLUMNS = (
    "site_id, name, time_zone, created_at, updated_at, allowed_origins, ingest_policy, "
    "report_visibility"
)

# $1 site_id, $2 name, $3 time_zone, $4 allowed_origins, $5 ingest_policy, $6
# report_visibility; no row when the site exists.
CREATE_SITE = f"""
INSERT INTO sites (site_id, name, time_zone, allowed_origins, ingest_policy, report_visibility)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (site_id) DO NOTHING
RETURNING {_COLUMNS}
"""

# $1 site_id
GET_SITE = f"SELECT {_COLUMNS} FROM sites WHERE site_id = $1"

# $1 site_id; the row locked until the transaction ends, so no batch of its events is stored
# meanwhile (the writer reads it FOR SHARE). first_event_at is set once retention has dropped
# some of its events.
LOCK_SITE = f"SELECT {_COLUMNS}, first_event_at FROM sites WHERE site_id = $1 FOR UPDATE"

# $1 the last site_id of the page before ('' for the first page), $2 page size
LIST_SITES = f"SELECT {_COLUMNS} FROM sites WHERE site_id > $1 ORDER BY site_id LIMIT $2"

# $1 core.schema.STORAGE_UPKEEP_LOCK_KEY: held until the transaction ends, so that the
# writer's retention drops no raw event while a change of zone counts the days again.
HOLD_OFF_RETENTION = "SELECT pg_advisory_xact_lock_shared($1)"

# $1 site_id, $2 name, $3 time_zone, $4 allowed_origins, $5 ingest_policy, $6 report_visibility
UPDATE_SITE = f"""
UPDATE sites SET name = $2, time_zone = $3, allowed_origins = $4, ingest_policy = $5,
    report_visibility = $6, updated_at = now()
WHERE site_id = $1
RETURNING {_COLUMNS}
"""

# What the ingest servers are told of every site (report_server.site_publishing).
ALL_SITE_RECORDS = (
    "SELECT site_id, time_zone, allowed_origins, ingest_policy, report_visibility FROM sites"
)

# Counting a site's days again in a new time zone ($1 site_id, $2 time_zone), in the
# transaction that changes it: the daily aggregates hold days in the site's zone. The all-time
# aggregates do not depend on the zone.
DELETE_SITE_DAYS = (
    "DELETE FROM daily_totals WHERE site_id = $1",
    "DELETE FROM daily_path_views WHERE site_id = $1",
    "DELETE FROM weekly_path_views WHERE site_id = $1",
    "DELETE FROM weekly_user_bitmaps WHERE site_id = $1",
    "DELETE FROM weekly_rollups WHERE site_id = $1",
    "DELETE FROM daily_user_bitmaps WHERE site_id = $1",
    "DELETE FROM daily_visitor_bitmaps WHERE site_id = $1",
)
RECOUNT_SITE_DAYS = (
    """
    INSERT INTO daily_path_views (site_id, event_type, day, path, views)
    SELECT site_id, event_type, (occurred_at AT TIME ZONE $2)::date, path, count(*)
    FROM events WHERE site_id = $1
    GROUP BY 1, 2, 3, 4
    """,
    """
    INSERT INTO daily_user_bitmaps (site_id, event_type, day, chunk, bits, added_users)
    SELECT site_id, event_type, day, chunk, bits, bit_count(bits)
    FROM (
        SELECT e.site_id, e.event_type, (e.occurred_at AT TIME ZONE $2)::date AS day,
               user_chunk(u.user_no) AS chunk, bitmap_of(user_bit(u.user_no), 1) AS bits
        FROM events AS e JOIN site_users AS u USING (site_id, user_id)
        WHERE e.site_id = $1
        GROUP BY 1, 2, 3, 4
    ) AS days
    """,
    """
    INSERT INTO daily_visitor_bitmaps (site_id, event_type, day, chunk, bits, added_visitors)
    SELECT site_id, event_type, day, chunk, bits, bit_count(bits)
    FROM (
        SELECT e.site_id, e.event_type, (e.occurred_at AT TIME ZONE $2)::date AS day,
               user_chunk(u.user_no) AS chunk, bitmap_of(user_bit(u.user_no), 1) AS bits
        FROM events AS e
        JOIN site_users AS u ON u.site_id = e.site_id AND u.user_id = chr(1) || e.visitor_id::text
        WHERE e.site_id = $1 AND e.user_id IS NULL
        GROUP BY 1, 2, 3, 4
    ) AS days
    """,
    """
    INSERT INTO daily_totals (site_id, event_type, day, views, users, anonymous_visitors)
    SELECT site_id, event_type, (occurred_at AT TIME ZONE $2)::date, count(*),
           count(DISTINCT user_id),
           count(DISTINCT visitor_id) FILTER (WHERE user_id IS NULL)
    FROM events WHERE site_id = $1
    GROUP BY 1, 2, 3
    """,
)
