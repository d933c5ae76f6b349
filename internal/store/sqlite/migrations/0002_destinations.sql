-- Streaming destinations (design 5.5). The secret columns and header values hold what the
-- caller sealed; the store never sees them in clear. Times are unix milliseconds (UTC).

CREATE TABLE destinations (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
    scope                   TEXT    NOT NULL CHECK (scope IN ('group', 'instance')),
    -- The top-level group owning a group destination; NULL for the instance's.
    namespace_key           INTEGER REFERENCES namespaces (key) ON DELETE CASCADE,
    name                    TEXT    NOT NULL CHECK (name <> ''),
    category                TEXT    NOT NULL CHECK (category <> ''),
    config                  BLOB    NOT NULL, -- JSON object, returned byte for byte
    secret_token            TEXT    NOT NULL,
    signing_secret          TEXT    NOT NULL,
    previous_signing_secret TEXT    NOT NULL DEFAULT '',
    previous_valid_until    INTEGER,
    active                  INTEGER NOT NULL,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    CHECK ((scope = 'group') = (namespace_key IS NOT NULL))
) STRICT;

-- Names are unique per owner: per top-level group, and among the instance's destinations.
CREATE UNIQUE INDEX destinations_group_name_key    ON destinations (namespace_key, name) WHERE scope = 'group';
CREATE UNIQUE INDEX destinations_instance_name_key ON destinations (name) WHERE scope = 'instance';
-- Listing by owner; like every SQLite index it ends in the rowid (id), so it serves ORDER BY id.
CREATE INDEX destinations_scope_namespace_key_idx ON destinations (scope, namespace_key);

-- Lists keep their order in position (0, 1, ...).
CREATE TABLE destination_headers (
    destination_id INTEGER NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    name           TEXT    NOT NULL CHECK (name <> ''),
    value          TEXT    NOT NULL,
    active         INTEGER NOT NULL,
    PRIMARY KEY (destination_id, position),
    UNIQUE (destination_id, name)
) STRICT, WITHOUT ROWID;

-- Event-type filters: kind allow or deny; is_category 1 when value is a catalog category,
-- 0 when it is an event type. One list per (kind, is_category).
CREATE TABLE destination_event_filters (
    destination_id INTEGER NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    kind           TEXT    NOT NULL CHECK (kind IN ('allow', 'deny')),
    is_category    INTEGER NOT NULL CHECK (is_category IN (0, 1)),
    position       INTEGER NOT NULL,
    value          TEXT    NOT NULL CHECK (value <> ''),
    PRIMARY KEY (destination_id, kind, is_category, position),
    UNIQUE (destination_id, kind, is_category, value)
) STRICT, WITHOUT ROWID;

-- Namespace filters. Deleting a namespace a filter names is refused (no cascade): dropping the
-- filter silently would widen what the destination receives.
CREATE TABLE destination_namespace_filters (
    destination_id INTEGER NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    namespace_key  INTEGER NOT NULL REFERENCES namespaces (key),
    project        INTEGER NOT NULL,
    PRIMARY KEY (destination_id, position),
    UNIQUE (destination_id, namespace_key)
) STRICT, WITHOUT ROWID;

CREATE INDEX destination_namespace_filters_namespace_key_idx ON destination_namespace_filters (namespace_key);
