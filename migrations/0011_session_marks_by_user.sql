-- An access path to one user's session marks (issue 14 §4).
--
-- The per-user session reads (`/sessions?user_id=`, `/metrics?user_id=`) and erasure
-- asked `session_events` for one user by filtering every mark of the project in range,
-- so their cost grew with the whole project. This index lets them read only the user's
-- marks. It costs one index row per session start or stop event only (session_events
-- holds nothing else), not one per ingested event. It carries `is_start` (the primary
-- key's columns come with it) so it covers the reads: without that, SQLite's planner
-- keeps preferring the covering primary key and filters every mark in range.
CREATE INDEX session_events_by_user ON session_events (project_id, user, timestamp, is_start);
