-- Raw events in monthly partitions by their own time (occurred_at, months in UTC), so that
-- reports over a range read only its months and retention (RAW_EVENT_RETENTION_DAYS) drops
-- whole months without deleting a row. Partitions are created ahead by the writer
-- (writer/storage.py, with create_event_partition below); an event of a month without one
-- (a straggler older than every partition, say) goes to events_default, so that no accepted
-- event ever fails to store.
--
-- A partitioned table's unique keys must hold its partition key, and a resend of an event_id
-- need not carry the same timestamp (a client may change what it resends, and an event sent
-- without a timestamp gets its receive time, new on every attempt). So which events are
-- stored is decided by event_ids, one row per stored (site_id, event_id), unpartitioned: one
-- unique index sees every stored id and every concurrent insert of one, whatever the
-- event's time. Its rows are kept for ever, or EVENT_ID_WINDOW_DAYS after they were stored.
--
-- Every stored row and every aggregate stays as it is: the rows are copied, the aggregates
-- are not touched. A writer of the version before, whose statement names ON CONFLICT
-- (site_id, event_id) on events, fails on every batch after this (there is no such key any
-- more) and retries until it is upgraded, storing nothing meanwhile.
LOCK TABLE events IN ACCESS EXCLUSIVE MODE;

ALTER TABLE events RENAME TO events_before_0009;

CREATE TABLE events (
    event_id        text COLLATE "C" NOT NULL,
    site_id         text COLLATE "C" NOT NULL,
    event_type      text COLLATE "C" NOT NULL,
    path            text COLLATE "C" NOT NULL,
    user_id         text COLLATE "C",
    occurred_at     timestamptz NOT NULL,
    referrer        text,
    properties      jsonb NOT NULL,
    received_at     timestamptz NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    visitor_id      bigint,
    browser         text,
    os              text,
    device          text,
    referrer_host   text,
    referrer_source text,
    utm_source      text,
    utm_medium      text,
    utm_campaign    text,
    utm_term        text,
    utm_content     text,
    country         text
) PARTITION BY RANGE (occurred_at);

CREATE TABLE events_default PARTITION OF events DEFAULT;

-- The month starting on `month` (a first of the month) as partition events_YYYY_MM; false if
-- it exists. Rows of that month in events_default move into it first, so that creating one
-- never fails on a straggler stored there before. ATTACH takes only a SHARE UPDATE EXCLUSIVE
-- lock on events (stores and reports go on), and an ACCESS EXCLUSIVE one on events_default.
CREATE FUNCTION create_event_partition(month date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name  text := format('events_%s', to_char(month, 'YYYY_MM'));
    first timestamptz := month::timestamp AT TIME ZONE 'UTC';
    next  timestamptz := (month + interval '1 month') AT TIME ZONE 'UTC';
BEGIN
    IF extract(day FROM month) <> 1 THEN
        RAISE EXCEPTION 'a partition starts on the first of a month, not on %', month;
    END IF;
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS)', name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM events_default WHERE occurred_at >= $1 AND occurred_at < $2'
        ' RETURNING *) INSERT INTO %I SELECT * FROM moved',
        name
    ) USING first, next;
    EXECUTE format(
        'ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, first, next
    );
    RETURN true;
END
$$;

-- Retention: drop the partition of the month starting on `month`, first noting in
-- sites.first_event_at the earliest event it held of each site (so that the reports' "all"
-- period keeps its first day); false if there is none. The lock on events comes first, as in
-- the writer's statement (events, then its sites' rows), and holds off stragglers while each
-- site's first event is read, site by site from the partition's key (a skip scan: as many
-- index probes as sites). It blocks stores and reports for that moment; the caller bounds
-- the wait for it with lock_timeout.
CREATE FUNCTION drop_event_partition(month date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    name text := format('events_%s', to_char(month, 'YYYY_MM'));
BEGIN
    IF to_regclass(name) IS NULL THEN
        RETURN false;
    END IF;
    LOCK TABLE events IN ACCESS EXCLUSIVE MODE;
    EXECUTE format(
        'WITH RECURSIVE firsts AS ('
        '    (SELECT site_id, occurred_at FROM %1$I ORDER BY site_id, occurred_at LIMIT 1)'
        '    UNION ALL'
        '    SELECT n.site_id, n.occurred_at FROM firsts AS f CROSS JOIN LATERAL ('
        '        SELECT site_id, occurred_at FROM %1$I WHERE site_id > f.site_id'
        '        ORDER BY site_id, occurred_at LIMIT 1) AS n'
        ')'
        ' UPDATE sites AS s SET first_event_at = least(s.first_event_at, f.occurred_at)'
        ' FROM firsts AS f WHERE s.site_id = f.site_id',
        name
    );
    EXECUTE format('DROP TABLE %I', name);
    RETURN true;
END
$$;

-- A partition for every month that holds events, and for this month and the next two.
SELECT create_event_partition(month)
FROM (
    SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date AS month
    FROM events_before_0009
    UNION
    SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + n * interval '1 month')::date
    FROM generate_series(0, 2) AS n
) AS months
ORDER BY month;

INSERT INTO events SELECT
    event_id, site_id, event_type, path, user_id, occurred_at, referrer, properties,
    received_at, stored_at, visitor_id, browser, os, device, referrer_host, referrer_source,
    utm_source, utm_medium, utm_campaign, utm_term, utm_content, country
FROM events_before_0009;

CREATE TABLE event_ids (
    site_id   text COLLATE "C" NOT NULL,
    event_id  text COLLATE "C" NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, event_id)
);

INSERT INTO event_ids (site_id, event_id, stored_at)
SELECT site_id, event_id, stored_at FROM events_before_0009;

-- What ids to let go (EVENT_ID_WINDOW_DAYS): rows go in in stored_at order, so a BRIN index
-- finds the old ones for next to nothing per insert.
CREATE INDEX event_ids_by_stored_at ON event_ids USING brin (stored_at);

DROP TABLE events_before_0009;

-- Reports read a site's events by site and time (0005's index, on every partition).
CREATE INDEX events_by_site_and_time ON events (site_id, occurred_at);

-- The earliest event of a site, once retention has dropped the partition that held it: the
-- first day of the reports' "all" period stays where it was. NULL while events still holds
-- the site's first event.
ALTER TABLE sites ADD COLUMN first_event_at timestamptz;
