-- Data keys sealed under the master key (e.g. the key of the token hashes), so that the
-- master key can be replaced by re-sealing (rewrap) without touching what they protect.
CREATE TABLE system_keys (
    purpose            TEXT PRIMARY KEY,
    sealed             BLOB NOT NULL,
    master_fingerprint TEXT NOT NULL
) STRICT;

-- Upstream (third-party) secrets: configuration, and versions under envelope encryption.
CREATE TABLE secrets (
    env               TEXT NOT NULL REFERENCES environments(name),
    name              TEXT NOT NULL,
    hook              TEXT,             -- JSON array: argv of the rotation hook
    hook_timeout_s    INTEGER,
    rotation_period_s INTEGER,
    overlap_s         INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    PRIMARY KEY (env, name)
) STRICT;

CREATE TABLE secret_versions (
    env         TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    sealed_dek  BLOB NOT NULL,          -- the version's data key, sealed under the master key
    ciphertext  BLOB NOT NULL,          -- the value, sealed under the data key
    fingerprint TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  INTEGER,
    state       TEXT NOT NULL,          -- current | previous | retired
    valid_until INTEGER,
    PRIMARY KEY (env, name, version),
    FOREIGN KEY (env, name) REFERENCES secrets(env, name)
) STRICT;

CREATE TABLE upstreams (
    env           TEXT NOT NULL REFERENCES environments(name),
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    inject        TEXT NOT NULL,
    allow_paths   TEXT NOT NULL,        -- JSON array
    allow_methods TEXT NOT NULL,        -- JSON array
    timeout_ms    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (env, name)
) STRICT;

CREATE TABLE gateway_faults (
    id         TEXT PRIMARY KEY,
    env        TEXT NOT NULL,
    upstream   TEXT NOT NULL,
    token_id   TEXT,
    kind       TEXT NOT NULL,           -- fail_after | revoke_after | rotate_after | latency
    n          INTEGER,
    status     INTEGER,
    duration_ms INTEGER,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
) STRICT;

CREATE TABLE gateway_usage (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    env        TEXT NOT NULL,
    upstream   TEXT NOT NULL,
    token_id   TEXT NOT NULL,
    run_id     TEXT,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    status     INTEGER NOT NULL,
    latency_us INTEGER NOT NULL
) STRICT;

CREATE INDEX gateway_usage_by_run ON gateway_usage(run_id) WHERE run_id IS NOT NULL;
