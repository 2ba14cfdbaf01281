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
# The SQL of each event dimension's value; a property's key is a parameter (see
# property_value). NULL reads as ''.
DIMENSION_VALUES = {
    "event_type": "event_type",
    "path": "path",
    "referrer_host": REFERRER_HOST,
    "browser": "coalesce(browser, '')",
    "os": "coalesce(os, '')",
    "device": "coalesce(device, '')",
    "country": "coalesce(country, '')",
}
# The SQL of each visit dimension's value, a column of VISITS: what a visit's events share
# (its first and last page, and the source and campaign of its first event). An event outside
# the visits a report counts (no visitor, or its visit began before the period) reads ''.
VISIT_VALUES = {
    "entry_page": "coalesce(entry_page, '')",
    "exit_page": "coalesce(exit_page, '')",
    "source": "coalesce(visit_source, '')",
    "utm_source": "coalesce(visit_utm_source, '')",
    "utm_medium": "coalesce(visit_utm_medium, '')",
    "utm_campaign": "coalesce(visit_utm_campaign, '')",
    "utm_term": "coalesce(visit_utm_term, '')",
    "utm_content": "coalesce(visit_utm_content, '')",
}
# A visit ends after a gap over this long between two events of its visitor.
VISIT_GAP = "interval '30 minutes'"
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


# Visits, computed from the events as they are read: exact whatever order the events arrived in
# (a late event joins, or bridges, the visits around it), and redelivered events are stored
# once. An event starts a visit when its visitor has no event in the VISIT_GAP before it (ties
# in time ordered by event_id), so reading from VISIT_GAP before the period's start tells
# every event of the period whether it starts one. A report counts the visits that start in
# its period ($2 to $3), each as it stands at the period's end (its events from then on are
# not read). {passes}: the event filters, as one condition; {columns}: each event's value of
# the report's event dimension (value_of), if any. Only the columns needed are carried: the
# rows are sorted once by visitor and time, and narrow rows sort in memory. Events without a
# visitor belong to no visit.
#   numbered: each event read, with its visitor and the number of its visit (from 1).
#   visits: each visit that starts in the period, with `passes`: one of its events passes the
#   event filters.
#   joined: each event of the period, with its visit's columns (NULL: outside them).
VISITS = """
WITH marked AS (
    SELECT {visitor} AS visitor, occurred_at, event_id, event_type, path, {passes} AS passes,
           coalesce(occurred_at - lag(occurred_at) OVER by_visitor > {gap}, true) AS starts,
           row_number() OVER by_visitor AS seq,
           referrer_source, utm_source, utm_medium, utm_campaign, utm_term, utm_content{columns}
    FROM events
    WHERE site_id = $1 AND occurred_at >= $2::timestamptz - {gap} AND occurred_at < $3
    WINDOW by_visitor AS (PARTITION BY {visitor} ORDER BY occurred_at, event_id)
),
numbered AS (
    SELECT *, count(*) FILTER (WHERE starts)
              OVER (PARTITION BY visitor ORDER BY occurred_at, event_id) AS visit
    FROM marked
),
visits AS (
    SELECT visitor, visit, min(occurred_at) AS started, max(occurred_at) AS ended,
           count(*) FILTER (WHERE event_type = 'page_view') AS pages,
           bool_or(passes) AS passes,
           substr(min({ordered_path}) FILTER (WHERE event_type = 'page_view'), 21) AS entry_page,
           substr(max({ordered_path}) FILTER (WHERE event_type = 'page_view'), 21) AS exit_page,
           max(referrer_source) FILTER (WHERE starts) AS visit_source,
           max(utm_source) FILTER (WHERE starts) AS visit_utm_source,
           max(utm_medium) FILTER (WHERE starts) AS visit_utm_medium,
           max(utm_campaign) FILTER (WHERE starts) AS visit_utm_campaign,
           max(utm_term) FILTER (WHERE starts) AS visit_utm_term,
           max(utm_content) FILTER (WHERE starts) AS visit_utm_content
    FROM numbered
    WHERE visitor IS NOT NULL
    GROUP BY visitor, visit
    HAVING min(occurred_at) >= $2
),
joined AS (
    SELECT numbered.visitor, numbered.visit, numbered.occurred_at, numbered.passes,
           visits.started IS NOT NULL AS in_visit, visits.entry_page, visits.exit_page,
           visits.visit_source, visits.visit_utm_source, visits.visit_utm_medium,
           visits.visit_utm_campaign, visits.visit_utm_term,
           visits.visit_utm_content{joined_columns}
    FROM numbered LEFT JOIN visits USING (visitor, visit)
    WHERE numbered.occurred_at >= $2
)
"""
# A page view's path behind its place in its visitor's events (20 digits), so that the least
# and greatest are the first and last (ordered aggregates would sort each visit again).
ORDERED_PATH = "(lpad(seq::text, 20, '0') || path) COLLATE \"C\""

# The visits of the period that pass the filters ({visit_filters}: the visit dimensions'):
# how many, how many had exactly one page view, their page views, and the microseconds from
# their first to their last event, summed.
VISIT_METRICS = (
    VISITS
    + """
SELECT count(*) AS visits, count(*) FILTER (WHERE pages = 1) AS bounces,
       coalesce(sum(pages), 0)::bigint AS pages,
       coalesce(sum((extract(epoch FROM ended - started) * 1000000)::bigint), 0)::bigint
           AS duration_us
FROM visits
WHERE passes{visit_filters}
"""
)

# With a filter on a visit dimension: the events that pass every filter, and their visitors.
VISIT_FILTERED_METRICS = (
    VISITS
    + """
SELECT count(*) AS views, count(DISTINCT visitor) AS visitors
FROM joined
WHERE passes{visit_filters}
"""
)

# $4 the buckets' starts, in order: a visit counts in the bucket its first event falls in.
VISIT_SERIES = (
    VISITS
    + """
SELECT width_bucket(started, $4::timestamptz[]) AS bucket, count(*) AS visits
FROM visits
WHERE passes{visit_filters}
GROUP BY bucket
"""
)

# With a filter on a visit dimension: views and visitors by bucket of the event's time.
VISIT_FILTERED_SERIES = (
    VISITS
    + """
SELECT width_bucket(occurred_at, $4::timestamptz[]) AS bucket,
       count(*) AS views, count(DISTINCT visitor) AS visitors
FROM joined
WHERE passes{visit_filters}
GROUP BY bucket
"""
)

# $4 limit, $5 offset; rows of the events by {dimension} (an expression over joined's
# columns), each with its views, visitors and the visits (that start in the period) its events
# belong to, ranked by {order} then by value (code point order). One row even when the page is
# empty, holding the number of rows in all.
VISIT_BREAKDOWN = (
    VISITS
    + """,
grouped AS (
    SELECT {dimension} COLLATE "C" AS value,
           count(*) AS views, count(DISTINCT visitor) AS visitors,
           count(DISTINCT (visitor, visit)) FILTER (WHERE in_visit) AS visits
    FROM joined
    WHERE passes{visit_filters}
    GROUP BY 1
)
SELECT total.rows AS total_rows, page.value, page.views, page.visitors, page.visits
FROM (SELECT count(*) AS rows FROM grouped) AS total
LEFT JOIN LATERAL (
    SELECT value, views, visitors, visits FROM grouped
    ORDER BY {order} DESC, value ASC
    LIMIT $4 OFFSET $5
) AS page ON true
ORDER BY page.{order} DESC, page.value ASC
"""
)


def visits_sql(
    template: str, passes: str, visit_filters: str, columns: str = "", **parts: str
) -> str:
    """A statement over VISITS with its parts filled in; `columns`: the SQL of an event
    dimension's value, to break down by (value_of)."""
    return template.format(
        visitor=VISITOR,
        gap=VISIT_GAP,
        ordered_path=ORDERED_PATH,
        passes=passes,
        visit_filters=visit_filters,
        columns=f",\n           {columns} AS value_of" if columns else "",
        joined_columns=", numbered.value_of" if columns else "",
        **parts,
    )


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

# All time from the all-time aggregates: one bucket of every day the site has, without reading
# a row per day where an all-time one will do. Views are the all-time path views added up (each
# event is counted under one path: a row per path, however many days are stored). Users come
# from the all-time user bitmaps, the OR of every day's; anonymous visitors from the daily
# bitmaps, which have no all-time copy, and are few rows (an anonymous visitor's key lives one
# day, so its number falls in that day's chunks only). $1 site_id, $2 the event types counted
# (NULL: all). Also the first and last day the daily aggregates hold: the answer is that of a
# period only if the period holds them all (an event may be stamped up to minutes ahead, on a
# day after the period's last).
AGGREGATE_ALL_TIME = """
WITH chunks AS (
    SELECT chunk, bit_or(bits) AS bits
    FROM (
        SELECT chunk, bits FROM all_time_user_bitmaps
        WHERE site_id = $1 AND ($2::text[] IS NULL OR event_type = ANY($2::text[]))
        UNION ALL
        SELECT chunk, bits FROM daily_visitor_bitmaps
        WHERE site_id = $1 AND ($2::text[] IS NULL OR event_type = ANY($2::text[]))
    ) AS bitmaps
    GROUP BY chunk
)
SELECT (SELECT coalesce(sum(views), 0)::bigint FROM all_time_path_views
        WHERE site_id = $1 AND ($2::text[] IS NULL OR event_type = ANY($2::text[]))) AS views,
       (SELECT coalesce(sum(bit_count(bits)), 0)::bigint FROM chunks) AS visitors,
       (SELECT min(day) FROM daily_totals WHERE site_id = $1) AS first_day,
       (SELECT max(day) FROM daily_totals WHERE site_id = $1) AS last_day
"""
