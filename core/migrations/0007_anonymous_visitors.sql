-- Visitors are a user_id, or, for an event without one, the day's cookie-less visitor the
-- ingest server derived (events.visitor_id). Reports count visitors; GetStats counts users
-- only, as it always has. Both share each site's numbering: an anonymous visitor is numbered
-- in site_users under a key no user_id can be (chr(1) and its id: user_ids hold no control
-- characters), and its bits go to bitmaps of their own, so a range's visitors are its user
-- bitmaps ORed with these, and its users the user bitmaps alone.
COMMENT ON COLUMN site_users.user_id IS
    'a user_id, or chr(1) followed by the visitor_id of an anonymous visitor';

CREATE TABLE daily_visitor_bitmaps (
    site_id        text COLLATE "C" NOT NULL,
    event_type     text COLLATE "C" NOT NULL,
    day            date NOT NULL,                -- in the site's time zone
    chunk          integer NOT NULL,
    bits           bit(8192) NOT NULL,           -- the day's anonymous visitors' numbers
    added_visitors integer NOT NULL,             -- as daily_user_bitmaps.added_users
    PRIMARY KEY (site_id, event_type, day, chunk)
);

-- Distinct anonymous visitors of the day; its visitors are users + anonymous_visitors.
ALTER TABLE daily_totals ADD COLUMN anonymous_visitors bigint NOT NULL DEFAULT 0;
