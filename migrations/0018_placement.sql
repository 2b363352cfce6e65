-- Placement (issue 16): the data shard each project lives on, `SHARD_<n>` of the
-- workers' configs. Existing projects are on shard 0, which an upgraded deployment
-- binds to this same database, so their data stays where it is. The control database
-- (`DB`) holds the placement; on a data shard the `projects` table is only the
-- directory of the projects whose rows it holds (their ids), and this column stays 0.
ALTER TABLE projects ADD COLUMN shard INTEGER NOT NULL DEFAULT 0 CHECK (shard >= 0);
