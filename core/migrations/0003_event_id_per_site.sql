-- An event_id identifies an event within its site: two sites may send the same id (say,
-- "order-42:view") and both events are stored. Until now event_id alone was the key, so the
-- second site's event was answered "accepted" and never stored.
--
-- Every stored row stays (ids unique across all sites are unique within each), and no
-- aggregate changes: they count stored events, and no stored event is added or removed. A
-- writer of the version before, whose statement names the old key in ON CONFLICT, fails on
-- every batch after this (PostgreSQL finds no such constraint) and retries until it is
-- upgraded, storing nothing twice meanwhile.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (site_id, event_id);
