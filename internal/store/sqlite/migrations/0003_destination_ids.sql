-- Headers and namespace filters get ids of their own (GitLab addresses them by global id), and
-- destinations a version that every update increments (optimistic concurrency).
--
-- SQLite cannot add a primary key to a table, so the two tables are rebuilt: create the new
-- table, copy the rows (ids assigned in (destination_id, position) order), drop the old table,
-- rename the new one, recreate its indexes. Migrations run in a transaction with foreign keys
-- on; that is safe here because no table references these two: dropping one only deletes child
-- rows, and renaming rewrites no other table's references.

ALTER TABLE destinations ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

-- AUTOINCREMENT: an id is unique across all destinations and never reused, also after the row
-- with the highest id was deleted.
CREATE TABLE destination_headers_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    destination_id INTEGER NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    name           TEXT    NOT NULL CHECK (name <> ''),
    value          TEXT    NOT NULL,
    active         INTEGER NOT NULL,
    UNIQUE (destination_id, position),
    UNIQUE (destination_id, name)
) STRICT;

INSERT INTO destination_headers_new (destination_id, position, name, value, active)
    SELECT destination_id, position, name, value, active FROM destination_headers
    ORDER BY destination_id, position;

DROP TABLE destination_headers;
ALTER TABLE destination_headers_new RENAME TO destination_headers;

-- Namespace filters. Deleting a namespace a filter names is still refused (no cascade).
CREATE TABLE destination_namespace_filters_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    destination_id INTEGER NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    namespace_key  INTEGER NOT NULL REFERENCES namespaces (key),
    project        INTEGER NOT NULL,
    UNIQUE (destination_id, position),
    UNIQUE (destination_id, namespace_key)
) STRICT;

INSERT INTO destination_namespace_filters_new (destination_id, position, namespace_key, project)
    SELECT destination_id, position, namespace_key, project FROM destination_namespace_filters
    ORDER BY destination_id, position;

DROP TABLE destination_namespace_filters;
ALTER TABLE destination_namespace_filters_new RENAME TO destination_namespace_filters;

CREATE INDEX destination_namespace_filters_namespace_key_idx ON destination_namespace_filters (namespace_key);
