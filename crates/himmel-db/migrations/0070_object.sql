-- S3 object storage. Object data lives in chunk-encrypted files under
-- <data_dir>/objects/; these tables hold the metadata.
--
-- Keys are ordered byte-wise as S3 requires: `sort_key` is the key's UTF-8
-- bytes in lowercase hex, which sorts the same under every collation of
-- both engines (a prefix of a key is a prefix of its hex, and `prefix || 'g'`
-- bounds every key under a prefix from above).

-- versioning: '' (never enabled), 'Enabled', 'Suspended'.
-- config: JSON with the bucket's sub-resources (tagging, cors, policy, acl,
-- object lock configuration, data-event audit switch).
CREATE TABLE s3_buckets (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    versioning TEXT NOT NULL,
    object_lock BIGINT NOT NULL,
    config TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX s3_buckets_project ON s3_buckets (project_id, name);

-- One row per object version (or delete marker). `id` is the version's
-- random identity; `version_id` is what clients see ('null' for objects
-- written while versioning was never enabled or suspended).
-- segments: JSON [[file_id, plaintext size], ...] in order; one per part.
-- meta: the sealed (encrypted) JSON of user metadata and standard headers.
-- sse: 'AES256' (project key), 'SSE-C' (customer key), 'aws:kms'.
-- sse_key_hash: for SSE-C, a salted hash of the customer key.
CREATE TABLE s3_objects (
    id TEXT PRIMARY KEY,
    bucket_id TEXT NOT NULL,
    object_key TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    version_id TEXT NOT NULL,
    is_latest BIGINT NOT NULL,
    delete_marker BIGINT NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified BIGINT NOT NULL,
    segments TEXT NOT NULL,
    meta TEXT NOT NULL,
    sse TEXT NOT NULL,
    sse_key_id TEXT NOT NULL,
    sse_key_hash TEXT NOT NULL,
    tags TEXT NOT NULL,
    lock_mode TEXT NOT NULL,
    lock_until BIGINT NOT NULL,
    legal_hold BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX s3_objects_listing ON s3_objects (bucket_id, is_latest, sort_key);
CREATE INDEX s3_objects_versions ON s3_objects (bucket_id, sort_key, created_at);

CREATE TABLE s3_uploads (
    id TEXT PRIMARY KEY,
    bucket_id TEXT NOT NULL,
    object_key TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    meta TEXT NOT NULL,
    sse TEXT NOT NULL,
    sse_key_id TEXT NOT NULL,
    sse_key_hash TEXT NOT NULL,
    tags TEXT NOT NULL,
    initiator TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX s3_uploads_bucket ON s3_uploads (bucket_id, sort_key, created_at);

CREATE TABLE s3_parts (
    upload_id TEXT NOT NULL,
    part_number BIGINT NOT NULL,
    file_id TEXT NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
