-- JWT signing keys per environment and algorithm. The private key is sealed (AES-256-GCM)
-- under a key derived from the master key; the public key is stored as a JWK.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    env           TEXT NOT NULL REFERENCES environments(name),
    alg           TEXT NOT NULL,
    state         TEXT NOT NULL,    -- next (published, not signing) | current (signing) | retired (published)
    sealed_key    BYTEA NOT NULL,
    public_jwk    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    activated_at  BIGINT,
    retired_at    BIGINT,
    publish_until BIGINT          -- retired keys leave the JWKS after this instant
);

CREATE INDEX signing_keys_by_env ON signing_keys(env, alg, state);
