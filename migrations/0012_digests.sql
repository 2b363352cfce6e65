-- Digests: a project's daily or weekly summary sent to a webhook, and the runs that
-- record each period's digest once.

-- One digest per project. The secret signs its webhooks as alert rules' secrets sign
-- theirs; it is shown only when made or rotated.
CREATE TABLE digests (
    project     TEXT    PRIMARY KEY,
    period      TEXT    NOT NULL CHECK (period IN ('daily', 'weekly')),
    hour_utc    INTEGER NOT NULL CHECK (hour_utc BETWEEN 0 AND 23),
    weekday     INTEGER CHECK (weekday BETWEEN 1 AND 7),       -- weekly only, 1 = Monday
    webhook_url TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL,                               -- epoch milliseconds
    updated_at  INTEGER NOT NULL                                -- epoch milliseconds
);

-- One row per digest sent (or being sent): the primary key makes a period's digest
-- recorded once, so overlapping cron runs and retries never send it twice. `payload`
-- is the exact webhook body, so a retry sends the same bytes; `delivery` is pending,
-- delivered or failed (retries exhausted: the message went to the dead-letter queue).
CREATE TABLE digest_runs (
    id              TEXT    PRIMARY KEY,  -- dg.<project>.<daily|weekly>.<period start ms>
    project         TEXT    NOT NULL,
    period          TEXT    NOT NULL CHECK (period IN ('daily', 'weekly')),
    start_ms        INTEGER NOT NULL,
    end_ms          INTEGER NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    queued_at       INTEGER,
    delivery        TEXT    NOT NULL CHECK (delivery IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    delivered_at    INTEGER
);

CREATE INDEX digest_runs_by_project ON digest_runs (project, period, start_ms);
CREATE INDEX digest_runs_unqueued ON digest_runs (queued_at) WHERE queued_at IS NULL;
