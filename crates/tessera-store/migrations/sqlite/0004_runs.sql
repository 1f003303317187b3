-- Pipeline runs: tokens minted for a run carry its id and are revoked when it ends.
CREATE TABLE runs (
    id                  TEXT PRIMARY KEY,
    env                 TEXT NOT NULL REFERENCES environments(name),
    label               TEXT,
    started_at          INTEGER NOT NULL,
    heartbeat_at        INTEGER NOT NULL,
    heartbeat_timeout_s INTEGER NOT NULL,
    finished_at         INTEGER,
    exit_code           INTEGER,
    status              TEXT NOT NULL,  -- running | finished | reaped
    tokens_minted       INTEGER NOT NULL,
    tokens_revoked      INTEGER NOT NULL,
    created_by          TEXT NOT NULL
) STRICT;

CREATE INDEX runs_by_label ON runs(env, label, finished_at);
CREATE INDEX runs_running ON runs(status, heartbeat_at) WHERE status = 'running';
