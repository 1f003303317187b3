-- Control plane: environments, clients, tokens, and the hash-chained audit log.
-- Instants are INTEGER microseconds since the Unix epoch (UTC); durations INTEGER seconds.

CREATE TABLE environments (
    name              TEXT PRIMARY KEY,
    default_ttl_s     INTEGER NOT NULL,
    max_ttl_s         INTEGER NOT NULL,
    idle_ttl_s        INTEGER,
    rotation_period_s INTEGER,
    max_uses          INTEGER,
    protected         INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
) STRICT;

CREATE TABLE clients (
    id             TEXT PRIMARY KEY,
    description    TEXT,
    allowed_scopes TEXT NOT NULL,   -- JSON object: environment -> [scope, ...]
    token_format   TEXT NOT NULL,
    alg            TEXT NOT NULL,
    secret_hash    BLOB NOT NULL,
    disabled       INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    hash          BLOB UNIQUE,      -- HMAC-SHA256(key, token); never the token
    env           TEXT NOT NULL REFERENCES environments(name),
    client_id     TEXT NOT NULL REFERENCES clients(id),
    scopes        TEXT NOT NULL,    -- space-separated
    audience      TEXT,
    format        TEXT NOT NULL,
    labels        TEXT NOT NULL,    -- JSON object
    run_id        TEXT,
    created_by    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    not_before    INTEGER,
    expires_at    INTEGER NOT NULL,
    idle_ttl_s    INTEGER,
    last_used_at  INTEGER,
    max_uses      INTEGER,
    uses          INTEGER NOT NULL DEFAULT 0,
    revoked_at    INTEGER,
    revoke_reason TEXT,
    rotated_from  TEXT,
    superseded_by TEXT,
    grace_until   INTEGER
) STRICT;

CREATE INDEX tokens_by_env_client ON tokens(env, client_id);
CREATE INDEX tokens_by_run ON tokens(run_id) WHERE run_id IS NOT NULL;
CREATE INDEX tokens_by_expiry ON tokens(expires_at);

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    action    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    env       TEXT,
    target    TEXT,
    details   TEXT NOT NULL,        -- JSON object of strings
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
) STRICT;

-- The last entry's seq and hash, updated in the same transaction as every append, so that
-- removing entries from the end of the log is detected too.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
) STRICT;
