-- Aggregates for ranges of days and for all time, kept by the writer in the same statement as
-- the events they count (writer/queries.py), filled here from what 0001 stored.
--
-- Unique users over any set of days, exactly: every user of a site gets a small number the
-- first time it is stored (0, 1, 2, ... per site), and every (site, event type, day) keeps a
-- bitmap of the numbers seen, cut into chunks of 8192 users (1 KiB, stored inline). Users over
-- several days are the bits of the days' bitmaps OR'ed chunk by chunk; bit_count counts them
-- (PostgreSQL 14 or newer). They replace daily_users: one row per user and day, and a
-- count(DISTINCT) over millions of them for all time.

-- A site's user numbers handed out so far: the next new user of the site gets this one.
CREATE TABLE site_user_counters (
    site_id text COLLATE "C" PRIMARY KEY,
    users   integer NOT NULL
);

CREATE TABLE site_users (
    site_id text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL,
    user_no integer NOT NULL,                    -- dense per site, from 0
    PRIMARY KEY (site_id, user_id)
);

-- Where a user number goes in the bitmaps: chunk user_no / 8192, bit user_no % 8192 (bit 0 is
-- the leftmost, as get_bit counts).
CREATE FUNCTION user_chunk(user_no integer) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN user_no >> 13;

CREATE FUNCTION user_bit(user_no integer) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN user_no & 8191;

-- bitmap_of(bit, 1): the bit(8192) with the bits of its rows set. set_bit on one state is
-- several times cheaper than OR'ing a shifted bit string per row.
DO $$
BEGIN
    EXECUTE format(
        'CREATE AGGREGATE bitmap_of(integer, integer) (SFUNC = set_bit, STYPE = bit, INITCOND = %L)',
        repeat('0', 8192)
    );
END
$$;

CREATE TABLE daily_user_bitmaps (
    site_id     text COLLATE "C" NOT NULL,
    event_type  text COLLATE "C" NOT NULL,
    day         date NOT NULL,                   -- the UTC calendar day, as in daily_totals
    chunk       integer NOT NULL,
    bits        bit(8192) NOT NULL,
    -- Users the latest write of this row added: the writer's statement reads it back
    -- (RETURNING shows only the new row) to add them to daily_totals.users.
    added_users integer NOT NULL,
    PRIMARY KEY (site_id, event_type, day, chunk)
);

CREATE TABLE all_time_user_bitmaps (
    site_id    text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    chunk      integer NOT NULL,
    bits       bit(8192) NOT NULL,
    PRIMARY KEY (site_id, event_type, chunk)
);

CREATE TABLE all_time_path_views (
    site_id    text COLLATE "C" NOT NULL,
    event_type text COLLATE "C" NOT NULL,
    path       text COLLATE "C" NOT NULL,
    views      bigint NOT NULL,
    PRIMARY KEY (site_id, event_type, path)
);

-- What is stored already: every event counted in 0001's aggregates is counted in these.
-- A writer of the version before may still be storing while another service migrates: its
-- transactions in flight finish first, later ones wait and then fail on the dropped table
-- (and retry until that writer is upgraded), so that no event is left out of the copies.
-- In the order that writer's statement takes them, so that neither waits for the other.
LOCK TABLE daily_path_views, daily_users IN EXCLUSIVE MODE;

INSERT INTO site_users (site_id, user_id, user_no)
SELECT site_id, user_id, (row_number() OVER (PARTITION BY site_id ORDER BY user_id) - 1)::integer
FROM (SELECT DISTINCT site_id, user_id FROM daily_users) AS users;

INSERT INTO site_user_counters (site_id, users)
SELECT site_id, count(*) FROM site_users GROUP BY site_id;

INSERT INTO daily_user_bitmaps (site_id, event_type, day, chunk, bits, added_users)
SELECT site_id, event_type, day, chunk, bits, bit_count(bits)
FROM (
    SELECT d.site_id, d.event_type, d.day, user_chunk(u.user_no) AS chunk,
           bitmap_of(user_bit(u.user_no), 1) AS bits
    FROM daily_users AS d JOIN site_users AS u USING (site_id, user_id)
    GROUP BY 1, 2, 3, 4
) AS days;

INSERT INTO all_time_user_bitmaps (site_id, event_type, chunk, bits)
SELECT site_id, event_type, chunk, bit_or(bits)
FROM daily_user_bitmaps
GROUP BY site_id, event_type, chunk;

INSERT INTO all_time_path_views (site_id, event_type, path, views)
SELECT site_id, event_type, path, sum(views)
FROM daily_path_views
GROUP BY site_id, event_type, path;

DROP TABLE daily_users;
