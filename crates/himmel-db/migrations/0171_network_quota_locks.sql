-- One row per (project, resource) that quota checks upsert before they
-- count: the upsert holds the row until the creating transaction ends, so
-- on PostgreSQL two concurrent creates of one project count one after the
-- other instead of both seeing room for one more.
CREATE TABLE net_quota_locks (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    PRIMARY KEY (project_id, resource)
);
