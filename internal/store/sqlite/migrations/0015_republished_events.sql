-- Events the log lost (ids the trail made leaves of kind recovered from the store's copies)
-- that an administrator re-published for delivery (auditstream trail republish, issue 15), so
-- that a second run does not send them again. republished_at: unix milliseconds (UTC). (0014
-- is another branch's.)

CREATE TABLE republished_events (
    event_id       INTEGER PRIMARY KEY,
    republished_at INTEGER NOT NULL
) STRICT;
