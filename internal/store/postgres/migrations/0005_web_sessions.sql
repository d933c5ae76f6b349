-- Signed-in browser sessions of the web UI. The cookie holds a random session id; only its
-- SHA-256 hash is stored, as with tokens. A session goes with its user (ON DELETE CASCADE).
-- token_hash is the hash of the personal access token the user signed in with; it is not a
-- reference, so that the caller decides what a revoked or expired token means for the session.

CREATE TABLE web_sessions (
    id_hash    bytea       PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE INDEX web_sessions_user_id_idx    ON web_sessions (user_id);
-- Deleting expired sessions.
CREATE INDEX web_sessions_expires_at_idx ON web_sessions (expires_at);
