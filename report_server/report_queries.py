"""The SQL of the reports other than GetStats, read from the events themselves: exact in any
time zone and under any filter. Each statement is built from the named parts below; every value
a client sends reaches PostgreSQL as a parameter, never as SQL text.

Placeholders: $1 site_id, $2 first instant read, $3 end instant (excluded); each report's own
parameters follow, then the filters'.
"""

from __future__ import annotations

# Who a visitor is: the user_id the event carries, or for an event without one the day's
# cookie-less visitor the ingest server derived; keyed as the writer keys it (see
# writer/queries.py), so no user_id can equal an anonymous visitor.
VISITOR = "coalesce(user_id, chr(1) || visitor_id::text)"
# The host of an event's referrer, lower-cased and without 'www.' ('' for none): the one the
# ingest server derived for an event from a browser (which also drops the site's own pages),
# else read from the referrer URL ('' when it is not a URL with a host).
REFERRER_HOST = (
    "CASE WHEN referrer_source IS NOT NULL THEN coalesce(referrer_host, '') "
    "ELSE regexp_replace(lower(coalesce(substring(referrer FROM "
    "'^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]+)'), '')), '^www\\.', '') END"
)
# The SQL of each dimension's value; a property's key is a parameter (see property_value).
DIMENSION_VALUES = {"event_type": "event_type", "path": "path", "referrer_host": REFERRER_HOST}
# A filter's condition on a value: one of the values, or starting with one of them.
FILTER_CONDITIONS = {
    "is": "{value} = ANY({values}::text[])",
    "prefix": "{value} ^@ ANY({values}::text[])",
}

_EVENTS_OF = """
FROM events
WHERE site_id = $1 AND occurred_at >= $2 AND occurred_at < $3{filters}
"""

# $4 the instant the current period starts: before it, the previous period (when compared).
METRICS = (
    """
SELECT count(*) FILTER (WHERE occurred_at >= $4) AS views,
       count(DISTINCT {visitor}) FILTER (WHERE occurred_at >= $4) AS visitors,
       count(*) FILTER (WHERE occurred_at < $4) AS previous_views,
       count(DISTINCT {visitor}) FILTER (WHERE occurred_at < $4) AS previous_visitors
"""
    + _EVENTS_OF
)

# $4 the buckets' starts, in order: an event counts in the last bucket starting at or before it.
TIME_SERIES = (
    """
SELECT width_bucket(occurred_at, $4::timestamptz[]) AS bucket,
       count(*) AS views, count(DISTINCT {visitor}) AS visitors
"""
    + _EVENTS_OF
    + "GROUP BY bucket"
)

# $4 limit, $5 offset; ranked by {order} then by value (code point order). One row even when
# the page is empty, holding the number of rows in all.
BREAKDOWN = (
    """
WITH grouped AS (
    SELECT coalesce({dimension}, '') COLLATE "C" AS value,
           count(*) AS views, count(DISTINCT {visitor}) AS visitors
"""
    + _EVENTS_OF
    + """    GROUP BY 1
)
SELECT total.rows AS total_rows, page.value, page.views, page.visitors
FROM (SELECT count(*) AS rows FROM grouped) AS total
LEFT JOIN LATERAL (
    SELECT value, views, visitors FROM grouped
    ORDER BY {order} DESC, value ASC
    LIMIT $4 OFFSET $5
) AS page ON true
ORDER BY page.{order} DESC, page.value ASC
"""
)

# The events of a site over a period, oldest first, for export.
EXPORT = (
    """
SELECT event_id, site_id, event_type, path, user_id, occurred_at, referrer, properties::text,
       received_at
"""
    + _EVENTS_OF
    + "ORDER BY occurred_at, event_id"
)

# $1 site_id, $2 since: each visitor whose events occurred since, and the latest of them.
LIVE_VISITORS = f"""
SELECT {VISITOR} AS visitor, max(occurred_at) AS latest
FROM events
WHERE site_id = $1 AND occurred_at >= $2 AND (user_id IS NOT NULL OR visitor_id IS NOT NULL)
GROUP BY 1
"""

# $1 site_id: its time zone (NULL if not registered) and its first event's instant: the
# earliest of the events kept and of those retention dropped (sites.first_event_at).
SITE_FACTS = """
SELECT (SELECT time_zone FROM sites WHERE site_id = $1) AS time_zone,
       least((SELECT first_event_at FROM sites WHERE site_id = $1),
             (SELECT min(occurred_at) FROM events WHERE site_id = $1)) AS first_event
"""


def property_value(key_placeholder: str) -> str:
    """A property's value; the key a parameter."""
    return f"(properties ->> {key_placeholder})"


def events_where(template: str, filters: str, **parts: str) -> str:
    """A report's statement with its filters' conditions and its parts filled in."""
    return template.format(filters=filters, visitor=VISITOR, **parts)


# The same counts from the daily aggregates, which the writer keeps by the site's days: what
# answers a report in the site's own zone, by days, ISO weeks or months, filtered at most by
# event type, however many events those days hold. $1 site_id, $2 first day, $3 last day,
# $4 the buckets' first days, in order, $5 the event types counted (NULL: all). Visitors over
# several days or event types are the days' user and anonymous visitor bitmaps ORed, chunk by
# chunk, and counted (users and anonymous visitors share the site's numbering, never a number).
AGGREGATE_SERIES = """
WITH totals AS (
    SELECT width_bucket(day, $4::date[]) AS bucket, sum(views)::bigint AS views
    FROM daily_totals
    WHERE site_id = $1 AND day BETWEEN $2 AND $3
      AND ($5::text[] IS NULL OR event_type = ANY($5::text[]))
    GROUP BY 1
),
visitors AS (
    SELECT bucket, sum(bit_count(bits))::bigint AS visitors
    FROM (
        SELECT width_bucket(day, $4::date[]) AS bucket, chunk, bit_or(bits) AS bits
        FROM (
            SELECT day, chunk, bits FROM daily_user_bitmaps
            WHERE site_id = $1 AND day BETWEEN $2 AND $3
              AND ($5::text[] IS NULL OR event_type = ANY($5::text[]))
            UNION ALL
            SELECT day, chunk, bits FROM daily_visitor_bitmaps
            WHERE site_id = $1 AND day BETWEEN $2 AND $3
              AND ($5::text[] IS NULL OR event_type = ANY($5::text[]))
        ) AS days
        GROUP BY 1, 2
    ) AS chunks
    GROUP BY bucket
)
SELECT totals.bucket, totals.views, coalesce(visitors.visitors, 0) AS visitors
FROM totals LEFT JOIN visitors USING (bucket)
"""

# A day series of one event type: each day's distinct users and anonymous visitors are kept
# exact in its row, so no bitmap is read. $1 site_id, $2 first day, $3 last day, $4 the event
# type.
AGGREGATE_DAYS = """
SELECT day, views, users + anonymous_visitors AS visitors
FROM daily_totals
WHERE site_id = $1 AND day BETWEEN $2 AND $3 AND event_type = $4
"""
