-- Write keys and read tokens, per-project ingest settings, and counts of dropped events.

-- Browser origins allowed to send events (a JSON array of patterns) and the rate-limit
-- tier of each client of the project (strict | standard | high | off).
ALTER TABLE projects ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
ALTER TABLE projects ADD COLUMN rate_limit TEXT NOT NULL DEFAULT 'standard'
    CHECK (rate_limit IN ('strict', 'standard', 'high', 'off'));

-- Keys are stored only as the SHA-256 of their text; the prefix tells them apart.
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects (id),
    kind       TEXT    NOT NULL CHECK (kind IN ('write', 'read')),
    hash       BLOB    NOT NULL UNIQUE,
    prefix     TEXT    NOT NULL,
    name       TEXT,
    created_at INTEGER NOT NULL,  -- epoch milliseconds
    revoked_at INTEGER            -- epoch milliseconds; NULL while the key works
);
CREATE INDEX api_keys_by_project ON api_keys (project_id);

-- Requests ingest answered but did not store (known bots), one row per request so a
-- redelivered queue message counts once. Purged with raw events.
CREATE TABLE dropped_events (
    project_id INTEGER NOT NULL,  -- projects.id
    event_id   BLOB    NOT NULL,  -- the UUID's 16 bytes
    timestamp  INTEGER NOT NULL,  -- epoch milliseconds
    reason     TEXT    NOT NULL,  -- 'bot'
    PRIMARY KEY (project_id, event_id)
) WITHOUT ROWID;
CREATE INDEX dropped_events_by_time ON dropped_events (project_id, timestamp);
