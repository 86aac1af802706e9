-- Audit trail: CADF events in a hash chain, and signed checkpoints.
--
-- hash = SHA-256(prev_hash || body), hex; the first event links to 64 zeros.
-- body is the canonical CADF event JSON exactly as hashed; the other columns
-- are copies of its fields for filtering and are checked against it by verify.

CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    at BIGINT NOT NULL,
    project_id TEXT,
    domain_id TEXT,
    initiator_id TEXT,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_events_project ON audit_events(project_id, seq);
CREATE INDEX audit_events_at ON audit_events(at);

-- Signed statements about the chain head (seq, hash). kind 'checkpoint' is
-- written every N events and on shutdown; kind 'prune' anchors the chain
-- after retention removed every event up to and including seq.
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'checkpoint',
    hash TEXT NOT NULL,
    at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
