"""The writer's SQL."""

# Store a batch of events and count the newly stored ones into the aggregates, in one statement.
# Events whose event_id is already stored are skipped (ON CONFLICT DO NOTHING); of copies within
# the batch the first (in stream order) is kept. Only the rows
# this statement inserted feed the aggregates, so a redelivered or resent event never counts
# twice. Aggregate rows are written in key order so that concurrent writers lock them in the
# same order. Returns the number of events newly stored.
STORE_EVENTS = """
WITH incoming AS (
    SELECT DISTINCT ON (event_id) *
    FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::timestamptz[], $7::text[], $8::text[], $9::timestamptz[]
    ) WITH ORDINALITY AS t(event_id, site_id, event_type, path, user_id,
                           occurred_at, referrer, properties, received_at, position)
    ORDER BY event_id, position
),
inserted AS (
    INSERT INTO events (event_id, site_id, event_type, path, user_id,
                        occurred_at, referrer, properties, received_at)
    SELECT event_id, site_id, event_type, path, user_id,
           occurred_at, referrer, properties::jsonb, received_at
    FROM incoming
    ON CONFLICT (event_id) DO NOTHING
    RETURNING site_id, event_type, (occurred_at AT TIME ZONE 'UTC')::date AS day, path, user_id
),
path_views AS (
    INSERT INTO daily_path_views AS d (site_id, event_type, day, path, views)
    SELECT site_id, event_type, day, path, count(*)
    FROM inserted
    GROUP BY site_id, event_type, day, path
    ORDER BY site_id, event_type, day, path
    ON CONFLICT (site_id, event_type, day, path)
    DO UPDATE SET views = d.views + excluded.views
),
new_users AS (
    INSERT INTO daily_users (site_id, event_type, day, user_id)
    SELECT DISTINCT site_id, event_type, day, user_id
    FROM inserted
    WHERE user_id IS NOT NULL
    ORDER BY site_id, event_type, day, user_id
    ON CONFLICT DO NOTHING
    RETURNING site_id, event_type, day
),
totals AS (
    INSERT INTO daily_totals AS d (site_id, event_type, day, views, users)
    SELECT site_id, event_type, day, sum(views), sum(users)
    FROM (
        SELECT site_id, event_type, day, count(*) AS views, 0 AS users
        FROM inserted GROUP BY site_id, event_type, day
        UNION ALL
        SELECT site_id, event_type, day, 0, count(*)
        FROM new_users GROUP BY site_id, event_type, day
    ) AS counts
    GROUP BY site_id, event_type, day
    ORDER BY site_id, event_type, day
    ON CONFLICT (site_id, event_type, day)
    DO UPDATE SET views = d.views + excluded.views, users = d.users + excluded.users
)
SELECT count(*) FROM inserted
"""
