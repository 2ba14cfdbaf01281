-- Reports read a site's events between two instants (any time zone's days and hours, any
-- filter), so they find them by site and time.
CREATE INDEX events_by_site_and_time ON events (site_id, occurred_at);
