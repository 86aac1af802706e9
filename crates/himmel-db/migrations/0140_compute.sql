-- Compute (Nova v2.1): flavors, keypairs, servers and instance actions are
-- rows of compute_resources, the resource as JSON in body (the model types
-- of himmel-compute) with the columns queries need copied beside it:
-- parent_id is the server of an instance action; user_id owns a keypair;
-- unique_key makes "one of these per ..." hold under concurrency (a flavor
-- name, a keypair name per user); host is the compute host of a server.
CREATE TABLE compute_resources (
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    parent_id TEXT,
    unique_key TEXT,
    host TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX compute_resources_project ON compute_resources(kind, project_id);
CREATE INDEX compute_resources_parent ON compute_resources(kind, parent_id);
CREATE INDEX compute_resources_host ON compute_resources(kind, host);
CREATE UNIQUE INDEX compute_resources_unique ON compute_resources(kind, unique_key);

-- Per-project quota limits that differ from the defaults.
CREATE TABLE compute_quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
);

-- Serialises quota checks of one project on PostgreSQL (SQLite has one writer).
CREATE TABLE compute_locks (
    name TEXT PRIMARY KEY
);
