-- S3 object lock settings given when a multipart upload was created
-- (x-amz-object-lock-* headers); completing the upload gives them to the
-- new object version. Apart from s3_uploads: a row without an upload (a
-- crash between the two inserts) is harmless and removed with the upload.
CREATE TABLE s3_upload_locks (
    upload_id TEXT PRIMARY KEY,
    lock_mode TEXT NOT NULL,
    lock_until BIGINT NOT NULL,
    legal_hold BIGINT NOT NULL
);
