-- Key Manager (Barbican v1): secrets, their user metadata and ACLs,
-- containers and orders.
--
-- A secret's payload is stored only sealed under its project's key
-- hierarchy (`sealed`: base64 of a wrapped data key and the envelope);
-- `content_type` and `sealed` stay NULL until the payload is stored (the
-- two-step create). Timestamps are Unix microseconds.
CREATE TABLE kms_secrets (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    creator_id TEXT NOT NULL,
    name TEXT,
    secret_type TEXT NOT NULL,
    algorithm TEXT,
    bit_length BIGINT,
    mode TEXT,
    expiration BIGINT,
    content_type TEXT,
    sealed TEXT,
    status TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX kms_secrets_project ON kms_secrets (project_id, created_at);

-- User metadata of a secret (not secret itself: stored as given).
CREATE TABLE kms_secret_metadata (
    secret_id TEXT NOT NULL REFERENCES kms_secrets (id) ON DELETE CASCADE,
    meta_key TEXT NOT NULL,
    meta_value TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (secret_id, meta_key)
);

-- Explicit ACLs of secrets and containers. No row means Barbican's
-- implicit ACL: read with project-access true and no users.
CREATE TABLE kms_acls (
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    project_access BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (entity_type, entity_id, operation)
);
CREATE TABLE kms_acl_users (
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (entity_type, entity_id, operation, user_id)
);
CREATE INDEX kms_acl_users_user ON kms_acl_users (user_id);

CREATE TABLE kms_containers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    creator_id TEXT NOT NULL,
    name TEXT,
    container_type TEXT NOT NULL,
    status TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX kms_containers_project ON kms_containers (project_id, created_at);

-- The secrets a container holds, by reference name ('' when unnamed).
CREATE TABLE kms_container_secrets (
    container_id TEXT NOT NULL REFERENCES kms_containers (id) ON DELETE CASCADE,
    secret_id TEXT NOT NULL,
    ref_name TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (container_id, secret_id)
);
CREATE INDEX kms_container_secrets_secret ON kms_container_secrets (secret_id);

-- Orders: `meta` is the order's JSON meta as the client sent it.
CREATE TABLE kms_orders (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    creator_id TEXT NOT NULL,
    order_type TEXT NOT NULL,
    meta TEXT NOT NULL,
    status TEXT NOT NULL,
    secret_id TEXT,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX kms_orders_project ON kms_orders (project_id, created_at);
