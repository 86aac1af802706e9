-- Networking (Neutron v2.0): every resource is one row of net_resources.
--
-- body is the resource as JSON (the model types of himmel-network); the
-- other columns are copies of its fields that queries and constraints need:
-- parent_id is the network of a subnet or port and the group of a rule;
-- visible_to_all marks shared and external networks (and their subnets);
-- unique_key makes "one of these per ..." rules hold under concurrency
-- (a MAC per network, a default security group per project, a rule per group).

CREATE TABLE net_resources (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    project_id TEXT NOT NULL,
    parent_id TEXT,
    visible_to_all BIGINT NOT NULL DEFAULT 0,
    unique_key TEXT,
    revision_number BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX net_resources_kind_project ON net_resources(kind, project_id);
CREATE INDEX net_resources_kind_parent ON net_resources(kind, parent_id);
CREATE UNIQUE INDEX net_resources_unique ON net_resources(kind, unique_key);

-- IPAM: one row per address in use, so two allocations of one address
-- cannot both commit. owner_id is a port or a floating IP.
CREATE TABLE net_ip_allocations (
    subnet_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    network_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    PRIMARY KEY (subnet_id, ip_address)
);
CREATE INDEX net_ip_allocations_owner ON net_ip_allocations(owner_id);
CREATE INDEX net_ip_allocations_network ON net_ip_allocations(network_id);

-- VXLAN segment ids (VNIs) in use, one per tenant network.
CREATE TABLE net_segments (
    segmentation_id BIGINT PRIMARY KEY,
    network_id TEXT NOT NULL UNIQUE
);

-- Per-project quota overrides; absent rows mean the default.
CREATE TABLE net_quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
);
