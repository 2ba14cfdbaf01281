"""The SQL of the reports other than GetStats, read from the events themselves: exact in any
time zone and under any filter. Each statement is built from the named parts below; every value
a client sends reaches PostgreSQL as a parameter, never as SQL text.

Placeholders: $1 site_id, $2 first instant read, $3 end instant (excluded); each report's own
parameters follow, then the filters'.
"""

from __future__ import annotations

# Who a visitor is: the user_id the event carries.
VISITOR = "user_id"
# The host of an event's referrer URL, lower-cased ('' when the event has none, or it is not a
# URL with a host).
REFERRER_HOST = (
    "lower(coalesce(substring(referrer FROM "
    "'^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]+)'), ''))"
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

# $1 site_id: its time zone (NULL if not registered) and its first event's instant.
SITE_FACTS = """
SELECT (SELECT time_zone FROM sites WHERE site_id = $1) AS time_zone,
       (SELECT min(occurred_at) FROM events WHERE site_id = $1) AS first_event
"""


def property_value(key_placeholder: str) -> str:
    """A property's value; the key a parameter."""
    return f"(properties ->> {key_placeholder})"


def events_where(template: str, filters: str, **parts: str) -> str:
    """A report's statement with its filters' conditions and its parts filled in."""
    return template.format(filters=filters, visitor=VISITOR, **parts)
