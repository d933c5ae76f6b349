-- Times are unix milliseconds (UTC) in INTEGER columns; NULL means "none".

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    event_type  TEXT    NOT NULL,
    entity_type TEXT    NOT NULL,
    entity_id   INTEGER NOT NULL,
    author_id   INTEGER NOT NULL,
    data        BLOB    NOT NULL
) STRICT;

-- Every SQLite index ends in the rowid (here: id), so these also serve ORDER BY id and keyset
-- paging within their prefix.
CREATE INDEX events_entity_idx     ON events (entity_type, entity_id);
CREATE INDEX events_author_idx     ON events (author_id);
CREATE INDEX events_event_type_idx ON events (event_type);
CREATE INDEX events_created_at_idx ON events (created_at);

CREATE TABLE namespaces (
    key        INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
    kind       TEXT    NOT NULL CHECK (kind IN ('group', 'project')),
    id         INTEGER,                           -- GitLab id; NULL while unknown
    name       TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    full_path  TEXT    NOT NULL UNIQUE,
    parent_key INTEGER REFERENCES namespaces (key),
    top_key    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (kind, id)
) STRICT;

CREATE INDEX namespaces_parent_key_idx ON namespaces (parent_key);

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    username   TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    admin      INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    hash       BLOB    NOT NULL UNIQUE,
    scopes     TEXT    NOT NULL, -- JSON array of strings
    expires_at INTEGER,
    revoked    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX tokens_user_id_idx ON tokens (user_id);

CREATE TABLE members (
    namespace_key INTEGER NOT NULL REFERENCES namespaces (key) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    access_level  INTEGER NOT NULL,
    expires_at    INTEGER,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (namespace_key, user_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX members_user_id_idx ON members (user_id);
