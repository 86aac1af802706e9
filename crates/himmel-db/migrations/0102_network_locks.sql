-- Named rows that writers update (to themselves) to queue behind one
-- another on PostgreSQL, where "find the first free one, then insert it"
-- would otherwise race between concurrent transactions. SQLite has one
-- writer at a time anyway.
CREATE TABLE net_locks (
    name TEXT PRIMARY KEY
);
INSERT INTO net_locks (name) VALUES ('segments');
INSERT INTO net_locks (name) VALUES ('default-security-groups');
