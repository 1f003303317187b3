-- The change feed: what each write transaction touched, so that every replica can refresh its
-- in-memory caches. `seq` is assigned under the chain head's row lock, so it is gap-free and
-- in commit order; replicas catch up with "seq > last seen".
CREATE TABLE change_log (
    seq    BIGINT PRIMARY KEY,
    kind   TEXT NOT NULL,           -- token | client | environment | signing_keys | secret | upstream | faults | master_key
    key    TEXT NOT NULL,
    origin TEXT NOT NULL            -- the server process that committed it
);
