-- Small objects kept in their metadata row instead of a file of their own.
-- inline_data: '' when the data lives in segment files; otherwise the sealed
-- object data, base64: key kind | wrapped data key | envelope, the envelope
-- bound to the version's row id so that it opens in no other row. It is
-- written in the transaction that makes the version visible, so the
-- object's data is exactly as durable as its metadata.
ALTER TABLE s3_objects ADD COLUMN inline_data TEXT NOT NULL DEFAULT '';
