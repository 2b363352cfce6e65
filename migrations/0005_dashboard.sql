-- Dashboards: a project may make its dashboard public (viewable without a token).

ALTER TABLE projects ADD COLUMN public_dashboard INTEGER NOT NULL DEFAULT 0
    CHECK (public_dashboard IN (0, 1));
