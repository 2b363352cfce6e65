-- An access path to the raw events of a few names: funnels (issue 17, issue 14 §4).
--
-- A funnel counts the users who sent events of its steps' names in order, so it needs
-- those events one by one; through the time index it read every raw event of the range
-- and dropped the other names, and its cost grew with everything the project sends.
-- This index lets it seek each name's events in (timestamp, event_id) order, the order
-- its pages are read in, and read nothing else.
--
-- It covers the read: `user` is its last column and the primary key's columns
-- (`project_id`, `event_id`) are in it, so no table row is visited. It is partial:
-- only events with a user take part in a funnel, so an event without one (an anonymous
-- API request, a CDN image) writes no entry. An event with a user writes one row more
-- than before: the table row, the time index and this one.
--
-- (0014 is reserved for a change made in parallel; see RESERVED_MIGRATIONS.)
CREATE INDEX raw_events_by_name ON raw_events (project_id, name, timestamp, event_id, user)
    WHERE user IS NOT NULL;
