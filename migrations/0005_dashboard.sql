-- Dashboards: a project may make its dashboard public (viewable without a token).
-- (0004 is taken by a change being made in parallel; the numbers are reconciled when
-- both are merged.)

ALTER TABLE projects ADD COLUMN public_dashboard INTEGER NOT NULL DEFAULT 0
    CHECK (public_dashboard IN (0, 1));
