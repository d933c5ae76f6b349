-- A count of the changes made to destinations (created, updated, deleted), kept by triggers in
-- the transaction of the change: the delivery engine polls it (DestinationStamp) to learn that
-- destinations changed. It summed every destination's version before, a scan of the table every
-- poll that cost more with every destination that exists (issue 12).

CREATE TABLE destination_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
) STRICT;

INSERT INTO destination_changes (id, n) VALUES (1, 0);

CREATE TRIGGER destinations_inserted AFTER INSERT ON destinations
BEGIN
    UPDATE destination_changes SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER destinations_updated AFTER UPDATE ON destinations
BEGIN
    UPDATE destination_changes SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER destinations_deleted AFTER DELETE ON destinations
BEGIN
    UPDATE destination_changes SET n = n + 1 WHERE id = 1;
END;
