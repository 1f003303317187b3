-- Pipeline runs: tokens minted for a run carry its id and are revoked when it ends.
CREATE TABLE runs (
    id                  TEXT PRIMARY KEY,
    env                 TEXT NOT NULL REFERENCES environments(name),
    label               TEXT,
    started_at          BIGINT NOT NULL,
    heartbeat_at        BIGINT NOT NULL,
    heartbeat_timeout_s BIGINT NOT NULL,
    finished_at         BIGINT,
    exit_code           BIGINT,
    status              TEXT NOT NULL,  -- running | finished | reaped
    tokens_minted       BIGINT NOT NULL,
    tokens_revoked      BIGINT NOT NULL,
    created_by          TEXT NOT NULL
);

CREATE INDEX runs_by_label ON runs(env, label, finished_at);
CREATE INDEX runs_running ON runs(status, heartbeat_at) WHERE status = 'running';
