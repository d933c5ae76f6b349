-- Per-group retention (issue 17): how long the stored events of a top-level group are kept,
-- set by its owners within the bounds the administrator gave (--retention-min,
-- --retention-max). No row: the instance default (--retention) applies. The purge finds an
-- event's group through its entity's namespace (events have no group column), so it follows
-- the group's tree as it is now, as the audit-event APIs do.

CREATE TABLE group_retention (
    namespace_key bigint      PRIMARY KEY REFERENCES namespaces (key) ON DELETE CASCADE,
    retention_ms  bigint      NOT NULL CHECK (retention_ms > 0),
    updated_at    timestamptz NOT NULL
);
