-- Key hierarchy: per-project key-encryption keys (KEKs), stored only wrapped
-- by the root key provider. Data keys are not here: they are stored wrapped
-- beside the data they encrypt.
--
-- state: 'primary' (wraps new data keys; one per project), 'active' (older
-- version, still opens existing data), 'destroyed' (crypto-shredded: the
-- wrapped key is gone, the row keeps the version number from being reused).
CREATE TABLE kms_project_keys (
    project_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    root_ref TEXT NOT NULL,
    wrapped TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, version)
);
