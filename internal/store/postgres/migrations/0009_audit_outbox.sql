-- The audit events of changes the CLI made straight on the database, waiting for the server to
-- publish them to the log (app drains the table, then deletes each row). event is the event as
-- a producer sends it (JSON), producer who wrote it (JSON); bytea keeps both byte for byte. An
-- identity never hands out an id twice, which matters because the idempotency key a row is
-- published with is derived from it.

CREATE TABLE audit_outbox (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event      bytea       NOT NULL,
    producer   bytea       NOT NULL,
    created_at timestamptz NOT NULL
);
