-- A count of the changes made to destinations (created, updated, deleted), kept by a trigger in
-- the transaction of the change, per row as SQLite's (an update of no row counts none): the
-- delivery engine polls it (DestinationStamp) to learn that destinations changed. It summed every
-- destination's version before, a scan of the table every poll that cost more with every
-- destination that exists (issue 12). Concurrent changes to destinations wait for one another
-- on this row until they commit; they are rare (rate-limited configuration changes).

CREATE TABLE destination_changes (
    id integer PRIMARY KEY CHECK (id = 1),
    n  bigint  NOT NULL
);

INSERT INTO destination_changes (id, n) VALUES (1, 0);

CREATE FUNCTION destinations_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE destination_changes SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER destinations_changed AFTER INSERT OR UPDATE OR DELETE ON destinations
    FOR EACH ROW EXECUTE FUNCTION destinations_changed();
