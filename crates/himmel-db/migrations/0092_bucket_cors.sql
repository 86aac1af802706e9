-- A bucket's CORS rules (PutBucketCors) as a JSON list; read for every
-- browser request that names an origin, by bucket name.
CREATE TABLE s3_bucket_cors (
    bucket_id TEXT PRIMARY KEY,
    rules TEXT NOT NULL
);
