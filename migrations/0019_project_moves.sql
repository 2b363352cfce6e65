-- Moving a project between data shards (issue 16, phase 2). Control database only.
--
-- `projects.also_shard` is the second shard a moving project's events are committed
-- on while its rows are copied and for a while after placement switches (double
-- writes): the consumer commits on `shard` first, then on `also_shard`. NULL when the
-- project is not moving.
ALTER TABLE projects ADD COLUMN also_shard INTEGER CHECK (also_shard >= 0);

-- One row per move: where it goes, which phase it is in and since when (each phase
-- that changes who writes or reads where waits the placement cache's TTL after the
-- last change), the copy's stage and cursor, what it has copied and deleted, and why
-- it failed. A project has at most one move that is not finished (`finished_at`).
CREATE TABLE project_moves (
    id          INTEGER PRIMARY KEY,
    project     TEXT    NOT NULL,            -- projects.slug
    from_shard  INTEGER NOT NULL,
    to_shard    INTEGER NOT NULL,
    phase       TEXT    NOT NULL CHECK (phase IN ('starting', 'copying', 'verifying',
                    'switched', 'draining', 'deleting', 'done', 'failed')),
    started_at  INTEGER NOT NULL,            -- epoch milliseconds
    phase_at    INTEGER NOT NULL,            -- when the phase began
    cut         INTEGER NOT NULL,            -- periods before it are copied as rows
    stage       TEXT    NOT NULL DEFAULT '', -- the copy's (or deletion's) current table
    cursor      TEXT    NOT NULL DEFAULT '', -- where in it the next run resumes (JSON)
    progress    TEXT    NOT NULL DEFAULT '{}', -- rows copied, replayed and deleted (JSON)
    mismatches  INTEGER NOT NULL DEFAULT 0,  -- verifications that found the shards apart
    error       TEXT,
    finished_at INTEGER                      -- done, or failed with its copy deleted
);

CREATE UNIQUE INDEX project_moves_running ON project_moves (project) WHERE finished_at IS NULL;
