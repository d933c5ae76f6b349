-- The audit events of changes the CLI made straight on the database, waiting for the server to
-- publish them to the log (app drains the table, then deletes each row). event is the event as
-- a producer sends it (JSON), producer who wrote it (JSON). AUTOINCREMENT: an id is never
-- reused, also after the table was emptied, because the idempotency key a row is published with
-- is derived from it. Times are unix milliseconds (UTC).

CREATE TABLE audit_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event      BLOB    NOT NULL,
    producer   BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
