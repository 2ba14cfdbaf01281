"""The writer's SQL."""

# Store a batch of events and count the newly stored ones into the aggregates, in one statement.
# The batch holds each (site_id, event_id) once (EventStore keeps the first copy, in stream
# order). Which events are new is decided by event_ids, one row per stored (site_id,
# event_id): events is partitioned by time (migration 0009) and cannot hold a unique key
# without the time, and a resend need not carry the same time. The batch's ids go into
# event_ids ON CONFLICT DO NOTHING, in key order so that concurrent writers wait on shared
# ids in the same order (the index's bytewise order whatever the database's collation: the
# order EventStore sends them in), and only the events whose ids went in are stored. The
# unique index sees every committed id and waits for an uncommitted one, so an id is stored
# once whichever partitions its copies' times fall in. Only the rows this statement inserted
# feed the aggregates, so a redelivered or resent event never counts twice. Aggregate rows are
# written in key order so that concurrent writers lock them in the same order. Returns the
# number of events newly stored.
#
# Sites: a site the batch brings for the first time is registered with the defaults. Each
# event's `day` is its calendar day in its site's time zone; the site's row is read FOR SHARE,
# so a change of zone (which locks the row while it counts the site's days again) waits for
# this batch, and a batch after it reads the new zone.
#
# Visitors: a user_id, or for an event without one its anonymous visitor (visitor_id, keyed
# chr(1) || visitor_id: no user_id holds a control character), are numbered alike; users' bits
# go to the user bitmaps (GetStats counts users), anonymous visitors' to bitmaps of their own,
# and a report's visitors are the two ORed.
#
# Users: a user_id the site has not had before gets the site's next number (site_users, from
# the counter in site_user_counters); if a concurrent writer numbered it first, the upsert
# keeps that number (its own is then never used, a harmless gap). The numbers set bits in the
# (site, event type, day) and all-time bitmaps; a bitmap row is rewritten only when the batch
# sets a bit it did not have, and daily_totals.users grows by the bits it did not have.
_INSERT_EVENTS = """
batch AS (
    SELECT *
    FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::timestamptz[], $7::text[], $8::text[], $9::timestamptz[],
        $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
        $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[]
    ) AS t(event_id, site_id, event_type, path, user_id,
           occurred_at, referrer, properties, received_at,
           visitor_id, browser, os, device, referrer_host, referrer_source,
           utm_source, utm_medium, utm_campaign, utm_term, utm_content, country)
),
new_ids AS (
    INSERT INTO event_ids (site_id, event_id)
    SELECT site_id, event_id FROM batch
    ORDER BY site_id COLLATE "C", event_id COLLATE "C"
    ON CONFLICT (site_id, event_id) DO NOTHING
    RETURNING site_id, event_id
),
inserted AS (
    INSERT INTO events (event_id, site_id, event_type, path, user_id,
                        occurred_at, referrer, properties, received_at,
                        visitor_id, browser, os, device, referrer_host, referrer_source,
                        utm_source, utm_medium, utm_campaign, utm_term, utm_content, country)
    SELECT event_id, site_id, event_type, path, user_id,
           occurred_at, referrer, properties::jsonb, received_at,
           visitor_id, browser, os, device, referrer_host, referrer_source,
           utm_source, utm_medium, utm_campaign, utm_term, utm_content, country
    FROM batch
    WHERE (site_id, event_id) IN (SELECT site_id, event_id FROM new_ids)
    RETURNING site_id, event_type, occurred_at, path, user_id, visitor_id
)
"""

# Counting the events of a CTE named `inserted` (site_id, event_type, occurred_at, path, user_id,
# visitor_id) into every aggregate: what the writer does for the events it newly stored, and
# what a rebuild (writer/rebuild.py) does for the stored events of a site's day. One text for
# both, so that an aggregate added here is rebuilt as it is kept.
_COUNT_INSERTED = """
batch_sites AS (
    SELECT DISTINCT site_id FROM inserted
),
registered AS (
    INSERT INTO sites (site_id, name)
    SELECT site_id, site_id FROM batch_sites
    ORDER BY site_id
    ON CONFLICT (site_id) DO NOTHING
),
zones AS (
    SELECT site_id, time_zone FROM sites
    WHERE site_id IN (SELECT site_id FROM batch_sites)
    ORDER BY site_id
    FOR SHARE
),
located AS (
    SELECT i.site_id, i.event_type,
           (i.occurred_at AT TIME ZONE coalesce(z.time_zone, 'UTC'))::date AS day,
           i.path, i.user_id IS NULL AS anonymous,
           coalesce(i.user_id, chr(1) || i.visitor_id::text) AS visitor_key
    FROM inserted AS i LEFT JOIN zones AS z USING (site_id)
),
path_counts AS (
    SELECT site_id, event_type, day, path, count(*) AS views
    FROM located
    GROUP BY site_id, event_type, day, path
),
daily_paths AS (
    INSERT INTO daily_path_views AS d (site_id, event_type, day, path, views)
    SELECT site_id, event_type, day, path, views
    FROM path_counts
    ORDER BY site_id, event_type, day, path
    ON CONFLICT (site_id, event_type, day, path)
    DO UPDATE SET views = d.views + excluded.views
),
all_time_paths AS (
    INSERT INTO all_time_path_views AS a (site_id, event_type, path, views)
    SELECT site_id, event_type, path, sum(views)
    FROM path_counts
    GROUP BY site_id, event_type, path
    ORDER BY site_id, event_type, path
    ON CONFLICT (site_id, event_type, path)
    DO UPDATE SET views = a.views + excluded.views
),
batch_users AS (
    SELECT site_id, user_id,
           (SELECT user_no FROM site_users AS u
            WHERE u.site_id = b.site_id AND u.user_id = b.user_id) AS user_no
    FROM (
        SELECT DISTINCT site_id, visitor_key AS user_id FROM located
        WHERE visitor_key IS NOT NULL
    ) AS b
),
unnumbered AS (
    SELECT site_id, user_id,
           row_number() OVER (PARTITION BY site_id ORDER BY user_id) AS rank,
           count(*) OVER (PARTITION BY site_id) AS site_count
    FROM batch_users
    WHERE user_no IS NULL
),
counters AS (
    INSERT INTO site_user_counters AS c (site_id, users)
    SELECT site_id, count(*) FROM unnumbered
    GROUP BY site_id
    ORDER BY site_id
    ON CONFLICT (site_id) DO UPDATE SET users = c.users + excluded.users
    RETURNING site_id, users
),
numbered AS (
    INSERT INTO site_users AS u (site_id, user_id, user_no)
    SELECT n.site_id, n.user_id, c.users - n.site_count + n.rank - 1
    FROM unnumbered AS n JOIN counters AS c USING (site_id)
    ORDER BY n.site_id, n.user_id
    ON CONFLICT (site_id, user_id) DO UPDATE SET user_no = u.user_no
    RETURNING site_id, user_id, user_no
),
user_numbers AS (
    SELECT site_id, user_id, user_no FROM batch_users WHERE user_no IS NOT NULL
    UNION ALL
    SELECT site_id, user_id, user_no FROM numbered
),
new_bits AS (
    SELECT i.site_id, i.event_type, i.day, i.anonymous, user_chunk(n.user_no) AS chunk,
           bitmap_of(user_bit(n.user_no), 1) AS bits
    FROM located AS i
    JOIN user_numbers AS n ON n.site_id = i.site_id AND n.user_id = i.visitor_key
    GROUP BY 1, 2, 3, 4, 5
),
daily_bitmaps AS (
    INSERT INTO daily_user_bitmaps AS d (site_id, event_type, day, chunk, bits, added_users)
    SELECT site_id, event_type, day, chunk, bits, bit_count(bits)
    FROM new_bits
    WHERE NOT anonymous
    ORDER BY site_id, event_type, day, chunk
    ON CONFLICT (site_id, event_type, day, chunk)
    DO UPDATE SET bits = d.bits | excluded.bits,
                  added_users = bit_count(excluded.bits & ~d.bits)
    WHERE d.bits | excluded.bits <> d.bits
    RETURNING site_id, event_type, day, added_users
),
all_time_bitmaps AS (
    INSERT INTO all_time_user_bitmaps AS a (site_id, event_type, chunk, bits)
    SELECT site_id, event_type, chunk, bit_or(bits)
    FROM new_bits
    WHERE NOT anonymous
    GROUP BY site_id, event_type, chunk
    ORDER BY site_id, event_type, chunk
    ON CONFLICT (site_id, event_type, chunk)
    DO UPDATE SET bits = a.bits | excluded.bits
    WHERE a.bits | excluded.bits <> a.bits
),
daily_visitor_bits AS (
    INSERT INTO daily_visitor_bitmaps AS d
        (site_id, event_type, day, chunk, bits, added_visitors)
    SELECT site_id, event_type, day, chunk, bits, bit_count(bits)
    FROM new_bits
    WHERE anonymous
    ORDER BY site_id, event_type, day, chunk
    ON CONFLICT (site_id, event_type, day, chunk)
    DO UPDATE SET bits = d.bits | excluded.bits,
                  added_visitors = bit_count(excluded.bits & ~d.bits)
    WHERE d.bits | excluded.bits <> d.bits
    RETURNING site_id, event_type, day, added_visitors
),
totals AS (
    INSERT INTO daily_totals AS d (site_id, event_type, day, views, users, anonymous_visitors)
    SELECT site_id, event_type, day, sum(views), sum(users), sum(anonymous)
    FROM (
        SELECT site_id, event_type, day, sum(views) AS views, 0 AS users, 0 AS anonymous
        FROM path_counts GROUP BY site_id, event_type, day
        UNION ALL
        SELECT site_id, event_type, day, 0, sum(added_users), 0
        FROM daily_bitmaps GROUP BY site_id, event_type, day
        UNION ALL
        SELECT site_id, event_type, day, 0, 0, sum(added_visitors)
        FROM daily_visitor_bits GROUP BY site_id, event_type, day
    ) AS counts
    GROUP BY site_id, event_type, day
    ORDER BY site_id, event_type, day
    ON CONFLICT (site_id, event_type, day)
    DO UPDATE SET views = d.views + excluded.views, users = d.users + excluded.users,
                  anonymous_visitors = d.anonymous_visitors + excluded.anonymous_visitors
)
"""

STORE_EVENTS = f"""
WITH {_INSERT_EVENTS},
{_COUNT_INSERTED}
SELECT count(*) FROM inserted
"""

# Add one window of an ingest server's drop counts ($1 window_id, then parallel arrays: $2
# site_id, $3 day, $4 reason, $5 count), once: a window already added (a redelivery, a resend)
# adds nothing. Rows in key order, so that concurrent writers lock them in the same order.
# Returns whether the window was new. A window comes again only while its message is
# unacknowledged or its ingest server retries a publish: within minutes of being added, so
# the ids of windows added more than a day ago are let go.
STORE_FILTERED_TRAFFIC = """
WITH forgotten AS (
    DELETE FROM filtered_traffic_windows WHERE added_at < now() - interval '1 day'
),
window_added AS (
    INSERT INTO filtered_traffic_windows (window_id) VALUES ($1)
    ON CONFLICT (window_id) DO NOTHING
    RETURNING window_id
),
counted AS (
    INSERT INTO filtered_traffic AS f (site_id, day, reason, count)
    SELECT site_id, day, reason, sum(count)
    FROM unnest($2::text[], $3::date[], $4::text[], $5::bigint[]) AS t(site_id, day, reason, count)
    WHERE EXISTS (SELECT 1 FROM window_added)
    GROUP BY site_id, day, reason
    ORDER BY site_id, day, reason
    ON CONFLICT (site_id, day, reason) DO UPDATE SET count = f.count + excluded.count
)
SELECT count(*) > 0 FROM window_added
"""

# Storage upkeep (writer.storage), each step in a transaction of its own that first takes the
# advisory lock $1 (core.schema.STORAGE_UPKEEP_LOCK_KEY: writers sharing the database take
# turns, and a change of a site's zone waits) and bounds its wait for table locks, so that a
# long report holding a lock delays the step, not the stores and reports queued behind it: a
# step that times out is done on the next run.
LOCK_STORAGE_UPKEEP = "SELECT pg_advisory_xact_lock($1)"
BOUND_LOCK_WAIT = "SET LOCAL lock_timeout = '1s'"
DATABASE_NOW = "SELECT now()"

# $1 the first of a month: its partition of events, created (rows of that month the default
# partition holds move into it); whether it was new.
CREATE_EVENT_PARTITION = "SELECT create_event_partition($1::date)"

# The months events has partitions for, oldest first.
EVENT_PARTITION_MONTHS = """
SELECT to_date(substring(c.relname FROM 8), 'YYYY_MM') AS month
FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_[0-9]{4}_[0-9]{2}$'
ORDER BY 1
"""

# $1 the first of a month: its partition dropped, each site's earliest event in it noted in
# sites.first_event_at first; whether there was one.
DROP_EVENT_PARTITION = "SELECT drop_event_partition($1::date)"

# $1 the retention cutoff: the default partition's events before it deleted, each site's
# earliest noted as DROP_EVENT_PARTITION does.
DELETE_OLD_DEFAULT_EVENTS = """
WITH dropped AS (
    DELETE FROM events_default WHERE occurred_at < $1
    RETURNING site_id, occurred_at
)
UPDATE sites AS s SET first_event_at = least(s.first_event_at, f.first)
FROM (SELECT site_id, min(occurred_at) AS first FROM dropped GROUP BY site_id) AS f
WHERE s.site_id = f.site_id
"""

# $1 a week's Monday, $2 the fewest views of a week rolled up (core.week_rollups): its path
# views and user bitmaps rolled up from its days (migration 0010) for every site and event type
# with that many views whose rollup is missing or adds up to other views than the
# days' totals (events came for the week after it was rolled up); whether there was any. A
# (site, event type)'s rows are rewritten whole, its paths, its bitmaps and the views they add up
# to from one snapshot of its days. A path or a chunk never leaves a day's rows (only a rebuild
# or a change of zone remakes them, and they remake the weeks too), so no row of a rollup
# outlives what it adds up. A rollup of the week with fewer views (a writer of the version
# before migration 0011 rolled up every week) is let go with its rows.
ROLL_UP_WEEK = """
WITH week_totals AS (
    SELECT site_id, event_type, sum(views) AS views FROM daily_totals
    WHERE day >= $1::date AND day < $1::date + 7
    GROUP BY site_id, event_type
    HAVING sum(views) >= $2
),
stale AS (
    SELECT t.site_id, t.event_type, t.views FROM week_totals AS t
    WHERE t.views IS DISTINCT FROM (
        SELECT r.views FROM weekly_rollups AS r
        WHERE r.site_id = t.site_id AND r.event_type = t.event_type AND r.week = $1::date
    )
),
rollups AS (
    INSERT INTO weekly_rollups AS r (site_id, event_type, week, views)
    SELECT site_id, event_type, $1::date, views FROM stale
    ON CONFLICT (site_id, event_type, week) DO UPDATE SET views = excluded.views
),
paths AS (
    INSERT INTO weekly_path_views AS w (site_id, event_type, week, path, views)
    SELECT d.site_id, d.event_type, $1::date, d.path, sum(d.views)
    FROM daily_path_views AS d JOIN stale AS s USING (site_id, event_type)
    WHERE d.day >= $1::date AND d.day < $1::date + 7
    GROUP BY d.site_id, d.event_type, d.path
    ON CONFLICT (site_id, event_type, week, path) DO UPDATE SET views = excluded.views
),
bitmaps AS (
    INSERT INTO weekly_user_bitmaps AS w (site_id, event_type, week, chunk, bits)
    SELECT d.site_id, d.event_type, $1::date, d.chunk, bit_or(d.bits)
    FROM daily_user_bitmaps AS d JOIN stale AS s USING (site_id, event_type)
    WHERE d.day >= $1::date AND d.day < $1::date + 7
    GROUP BY d.site_id, d.event_type, d.chunk
    ON CONFLICT (site_id, event_type, week, chunk) DO UPDATE SET bits = excluded.bits
),
quiet AS (
    DELETE FROM weekly_rollups AS r
    WHERE r.week = $1::date AND NOT EXISTS (
        SELECT FROM week_totals AS t WHERE t.site_id = r.site_id AND t.event_type = r.event_type
    )
    RETURNING r.site_id, r.event_type
),
quiet_paths AS (
    DELETE FROM weekly_path_views AS w USING quiet AS q
    WHERE w.site_id = q.site_id AND w.event_type = q.event_type AND w.week = $1::date
),
quiet_bitmaps AS (
    DELETE FROM weekly_user_bitmaps AS w USING quiet AS q
    WHERE w.site_id = q.site_id AND w.event_type = q.event_type AND w.week = $1::date
)
SELECT count(*) > 0 FROM stale
"""

# $1 the window's start: up to $2 ids stored before it let go (EVENT_ID_WINDOW_DAYS); how many.
FORGET_OLD_EVENT_IDS = """
WITH forgotten AS (
    DELETE FROM event_ids
    WHERE ctid = ANY(ARRAY(SELECT ctid FROM event_ids WHERE stored_at < $1 LIMIT $2))
    RETURNING 1
)
SELECT count(*) FROM forgotten
"""

# --- Rebuilding a site's aggregates from its stored events (writer/rebuild.py) --------------

# $1 site_id: its zone, the row locked until the transaction ends. The writer reads a site's
# row FOR SHARE before it counts any of the site's events (STORE_EVENTS' `zones`, which every
# aggregate it writes comes from), so this waits for the site's batches in flight to commit,
# and its batches after wait for this transaction: the events a rebuild reads are exactly those
# already counted, and every later one is counted on top of the rebuilt rows.
LOCK_SITE_FOR_REBUILD = "SELECT time_zone FROM sites WHERE site_id = $1 FOR UPDATE"

# $1 site_id: the instants of its first and last stored events (NULLs when it has none).
SITE_EVENT_SPAN = "SELECT min(occurred_at), max(occurred_at) FROM events WHERE site_id = $1"

# $1 site_id, $2 day: take the day's path views out of the all-time ones before the day is
# counted again, which adds them back (all-time user bitmaps only gain bits, so they are made
# again from the daily ones at the end: REBUILD_ALL_TIME).
UNCOUNT_DAY_PATH_VIEWS = """
UPDATE all_time_path_views AS a SET views = a.views - d.views
FROM daily_path_views AS d
WHERE d.site_id = $1 AND d.day = $2
  AND a.site_id = d.site_id AND a.event_type = d.event_type AND a.path = d.path
"""

# $1 site_id, $2 day; one per daily aggregate table (format with the table's name).
DELETE_DAY = "DELETE FROM {table} WHERE site_id = $1 AND day = $2"

# $1 site_id, $2 day, $3 the site's time zone: count the day's stored events into every
# aggregate, with the writer's own statement. The instants of a local day's midnights are
# looked for with a margin and the day checked event by event, so that a zone whose clocks
# skip midnight loses nothing. Returns the events counted.
REBUILD_DAY = f"""
WITH inserted AS (
    SELECT site_id, event_type, occurred_at, path, user_id, visitor_id
    FROM events
    WHERE site_id = $1
      AND occurred_at >= (($2::date)::timestamp AT TIME ZONE $3) - interval '3 hours'
      AND occurred_at < (($2::date + 1)::timestamp AT TIME ZONE $3) + interval '3 hours'
      AND (occurred_at AT TIME ZONE $3)::date = $2::date
),
{_COUNT_INSERTED}
SELECT count(*) FROM inserted
"""

# $1 site_id, $2 first day, $3 last day: the rows of the weeks those days fall in, deleted
# before core.week_rollups.ROLL_UP_SITE_WEEKS makes them again from the days (whose new rows
# could otherwise leave a rollup out of date with the same totals), while the site's row is
# locked: none of its events is stored between these statements.
DELETE_WEEKS = (
    """
    DELETE FROM weekly_path_views
    WHERE site_id = $1 AND week BETWEEN week_of($2) AND week_of($3)
    """,
    """
    DELETE FROM weekly_user_bitmaps
    WHERE site_id = $1 AND week BETWEEN week_of($2) AND week_of($3)
    """,
    """
    DELETE FROM weekly_rollups
    WHERE site_id = $1 AND week BETWEEN week_of($2) AND week_of($3)
    """,
)

# $1 site_id: the all-time aggregates made again from the daily ones (every event is counted on
# exactly one day, so its days add up to all time; days whose raw events are gone still count).
REBUILD_ALL_TIME = (
    "DELETE FROM all_time_path_views WHERE site_id = $1",
    """
    INSERT INTO all_time_path_views (site_id, event_type, path, views)
    SELECT site_id, event_type, path, sum(views) FROM daily_path_views
    WHERE site_id = $1
    GROUP BY site_id, event_type, path
    """,
    "DELETE FROM all_time_user_bitmaps WHERE site_id = $1",
    """
    INSERT INTO all_time_user_bitmaps (site_id, event_type, chunk, bits)
    SELECT site_id, event_type, chunk, bit_or(bits) FROM daily_user_bitmaps
    WHERE site_id = $1
    GROUP BY site_id, event_type, chunk
    """,
)
