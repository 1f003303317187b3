-- JWT signing keys per environment and algorithm. The private key is sealed (AES-256-GCM)
-- under a key derived from the master key; the public key is stored as a JWK.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    env           TEXT NOT NULL REFERENCES environments(name),
    alg           TEXT NOT NULL,
    state         TEXT NOT NULL,    -- next (published, not signing) | current (signing) | retired (published)
    sealed_key    BLOB NOT NULL,
    public_jwk    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    activated_at  INTEGER,
    retired_at    INTEGER,
    publish_until INTEGER          -- retired keys leave the JWKS after this instant
) STRICT;

CREATE INDEX signing_keys_by_env ON signing_keys(env, alg, state);
