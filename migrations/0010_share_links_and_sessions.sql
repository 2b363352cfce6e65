-- Share links that can be revoked one by one, dashboard sessions that hold no token,
-- and badges that a project opts in to.

-- One row per share link. The link's token is signed with the SHARE_SECRET secret
-- over the project, id and expiry (so a forged one costs no lookup); the row says
-- whether the link was revoked. The token itself is never stored.
CREATE TABLE share_links (
    id         TEXT    PRIMARY KEY,                         -- sh_ and 16 hex digits
    project_id INTEGER NOT NULL REFERENCES projects (id),
    created_at INTEGER NOT NULL,                            -- epoch milliseconds
    expires_at INTEGER NOT NULL,                            -- epoch milliseconds
    revoked_at INTEGER                                      -- NULL while the link works
);
CREATE INDEX share_links_by_project ON share_links (project_id);

-- Dashboard sessions opened by the login form: the cookie holds a random id, stored
-- here only as its SHA-256, naming the read token it was opened with (so revoking that
-- token ends the session). Expired rows are deleted when someone signs in.
CREATE TABLE dashboard_sessions (
    hash       BLOB    PRIMARY KEY,                         -- SHA-256 of the session id
    key_id     INTEGER NOT NULL REFERENCES api_keys (id),   -- the read token
    created_at INTEGER NOT NULL,                            -- epoch milliseconds
    expires_at INTEGER NOT NULL                             -- epoch milliseconds
) WITHOUT ROWID;
CREATE INDEX dashboard_sessions_by_expiry ON dashboard_sessions (expires_at);

-- Badges answer only for projects that opt in; a public dashboard shows what they show,
-- so the projects whose dashboard is public keep theirs.
ALTER TABLE projects ADD COLUMN public_badges INTEGER NOT NULL DEFAULT 0
    CHECK (public_badges IN (0, 1));
UPDATE projects SET public_badges = public_dashboard;
