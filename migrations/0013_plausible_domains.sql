-- Keyless Plausible events: the site domain (Plausible's data-domain) under which a
-- project takes /api/event without a write key, from its allowed origins only. NULL,
-- the default, refuses them. A domain names one project: the unique index makes a
-- second claim fail, and serves ingest's lookup by domain (NULLs are distinct in SQLite,
-- so every project without one fits).
ALTER TABLE projects ADD COLUMN plausible_domain TEXT;
CREATE UNIQUE INDEX projects_by_plausible_domain ON projects (plausible_domain);
