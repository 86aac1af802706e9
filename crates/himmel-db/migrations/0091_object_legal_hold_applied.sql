-- Whether a legal hold was ever applied to an object version (put ON or
-- OFF): S3 answers GetObjectLegalHold for a version that never had one
-- with NoSuchObjectLockConfiguration, not with status OFF.
ALTER TABLE s3_objects ADD COLUMN legal_hold_applied BIGINT NOT NULL DEFAULT 0;
