-- Alerts: minute rollups for alert rules to read, the rules with their state, the
-- history of firings and resolutions with every webhook delivery attempt, and
-- campaign states that rules can pause.

-- Rollups gain a `minute` period (rows of tally_core::rollup::Dimension::MINUTE, kept
-- about a day). SQLite cannot change a CHECK constraint in place, so the table is
-- rebuilt with its index and lock trigger.
CREATE TABLE rollups_new (
    project         TEXT    NOT NULL,
    period          TEXT    NOT NULL CHECK (period IN ('minute', 'hour', 'day', 'month')),
    start           INTEGER NOT NULL,
    dimension       TEXT    NOT NULL,
    value           TEXT    NOT NULL,
    count           INTEGER NOT NULL,
    errors          INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    duration_sum_us INTEGER NOT NULL,
    durations       BLOB    NOT NULL,
    users           BLOB    NOT NULL,
    instances       BLOB    NOT NULL,
    version         INTEGER NOT NULL,
    PRIMARY KEY (project, period, start, dimension, value)
) WITHOUT ROWID;

INSERT INTO rollups_new SELECT * FROM rollups;
DROP TABLE rollups;
ALTER TABLE rollups_new RENAME TO rollups;

CREATE INDEX rollups_by_dimension ON rollups (project, period, dimension, start);

-- A rule reads one value's minutes of one dimension; this index of minute rows only
-- makes that read touch just those rows.
CREATE INDEX rollups_minutes ON rollups (project, dimension, value, start)
    WHERE period = 'minute';

CREATE TRIGGER rollups_optimistic_lock BEFORE UPDATE ON rollups
WHEN NEW.version IS NOT OLD.version + 1
BEGIN
    SELECT RAISE(ABORT, 'rollup version conflict');
END;

-- One row per rule. `definition` is the rule's JSON (tally_core::alerts::Rule::
-- definition); the webhook secret is kept apart so no listing carries it by accident.
-- The state columns are what the minutely evaluation remembers; a transition is
-- written only if they still hold what the evaluation read (see ALERT_TRANSITION).
CREATE TABLE alert_rules (
    id            TEXT    PRIMARY KEY,
    project       TEXT    NOT NULL,
    definition    TEXT    NOT NULL,
    secret        TEXT,
    enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'firing')),
    state_since   INTEGER NOT NULL DEFAULT 0,
    last_fired_at INTEGER,
    last_value    REAL,
    last_volume   INTEGER,
    evaluated_at  INTEGER
);

CREATE INDEX alert_rules_by_project ON alert_rules (project);

-- Every firing and resolution. `payload` is the exact webhook body, so redelivery
-- sends the same bytes; `delivery` is none (no webhook), pending, delivered or failed
-- (retries exhausted: the message went to the dead-letter queue).
CREATE TABLE alerts (
    id              TEXT    PRIMARY KEY,  -- <rule id>.<fired|resolved>.<epoch ms>
    rule_id         TEXT    NOT NULL,
    project         TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('fired', 'resolved')),
    at              INTEGER NOT NULL,
    value           REAL,
    volume          INTEGER NOT NULL,
    payload         TEXT    NOT NULL,
    queued_at       INTEGER,
    delivery        TEXT    NOT NULL CHECK (delivery IN ('none', 'pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    delivered_at    INTEGER,
    campaign_paused TEXT
);

CREATE INDEX alerts_by_project ON alerts (project, at);
CREATE INDEX alerts_unqueued ON alerts (queued_at) WHERE queued_at IS NULL;

-- Each webhook delivery attempt: when, the receiver's status (NULL when no answer
-- came) and what went wrong.
CREATE TABLE alert_attempts (
    alert_id    TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status      INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (alert_id, attempt)
) WITHOUT ROWID;

-- Campaigns whose state was set: paused by an alert or by hand, or resumed. A
-- campaign without a row is active.
CREATE TABLE campaigns (
    project    TEXT    NOT NULL,
    campaign   TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('active', 'paused')),
    reason     TEXT,
    alert_id   TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project, campaign)
) WITHOUT ROWID;
