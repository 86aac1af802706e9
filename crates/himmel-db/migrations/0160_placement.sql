-- Placement: resource providers (compute hosts), their inventories per
-- resource class, and the allocations consumers (servers) hold on them.
-- A provider's generation is bumped by every change of its inventory or
-- allocations; writers that name a stale generation get a 409.
CREATE TABLE placement_providers (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    generation BIGINT NOT NULL,
    parent_uuid TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- allocation_ratio is stored in thousandths (1.5 -> 1500): integers only.
CREATE TABLE placement_inventories (
    provider_uuid TEXT NOT NULL,
    resource_class TEXT NOT NULL,
    total BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    min_unit BIGINT NOT NULL,
    max_unit BIGINT NOT NULL,
    step_size BIGINT NOT NULL,
    allocation_ratio_milli BIGINT NOT NULL,
    PRIMARY KEY (provider_uuid, resource_class)
);

CREATE TABLE placement_allocations (
    consumer_uuid TEXT NOT NULL,
    provider_uuid TEXT NOT NULL,
    resource_class TEXT NOT NULL,
    used BIGINT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (consumer_uuid, provider_uuid, resource_class)
);
CREATE INDEX placement_allocations_provider ON placement_allocations(provider_uuid);

