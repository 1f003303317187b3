-- Control plane: environments, clients, tokens, and the hash-chained audit log.
-- Instants are BIGINT microseconds since the Unix epoch (UTC); durations BIGINT seconds.

CREATE TABLE environments (
    name              TEXT PRIMARY KEY,
    default_ttl_s     BIGINT NOT NULL,
    max_ttl_s         BIGINT NOT NULL,
    idle_ttl_s        BIGINT,
    rotation_period_s BIGINT,
    max_uses          BIGINT,
    protected         BOOLEAN NOT NULL,
    created_at        BIGINT NOT NULL
);

CREATE TABLE clients (
    id             TEXT PRIMARY KEY,
    description    TEXT,
    allowed_scopes TEXT NOT NULL,   -- JSON object: environment -> [scope, ...]
    token_format   TEXT NOT NULL,
    alg            TEXT NOT NULL,
    secret_hash    BYTEA NOT NULL,
    disabled       BOOLEAN NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    hash          BYTEA UNIQUE,      -- HMAC-SHA256(key, token); never the token
    env           TEXT NOT NULL REFERENCES environments(name),
    client_id     TEXT NOT NULL REFERENCES clients(id),
    scopes        TEXT NOT NULL,    -- space-separated
    audience      TEXT,
    format        TEXT NOT NULL,
    labels        TEXT NOT NULL,    -- JSON object
    run_id        TEXT,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    not_before    BIGINT,
    expires_at    BIGINT NOT NULL,
    idle_ttl_s    BIGINT,
    last_used_at  BIGINT,
    max_uses      BIGINT,
    uses          BIGINT NOT NULL DEFAULT 0,
    revoked_at    BIGINT,
    revoke_reason TEXT,
    rotated_from  TEXT,
    superseded_by TEXT,
    grace_until   BIGINT
);

CREATE INDEX tokens_by_env_client ON tokens(env, client_id);
CREATE INDEX tokens_by_run ON tokens(run_id) WHERE run_id IS NOT NULL;
CREATE INDEX tokens_by_expiry ON tokens(expires_at);

CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    action    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    env       TEXT,
    target    TEXT,
    details   TEXT NOT NULL,        -- JSON object of strings
    prev_hash BYTEA NOT NULL,
    hash      BYTEA NOT NULL
);

-- The last entry's seq and hash, updated in the same transaction as every append, so that
-- removing entries from the end of the log is detected too.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
