-- The delivery engine's records: dead letters (events a destination could not take, kept for
-- their owners to list and redeliver) and the delivery log (recent attempts, bounded by the
-- caller). Both go with their destination (ON DELETE CASCADE). Event ids are not references:
-- events are purged by retention while their dead letters stay. Times are unix milliseconds
-- (UTC).

CREATE TABLE dead_letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
    destination_id  INTEGER NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL,
    event_type      TEXT    NOT NULL,
    event           BLOB    NOT NULL, -- the event JSON as it would have been delivered
    status_code     INTEGER NOT NULL, -- last HTTP status; 0 when none
    error           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    first_failed_at INTEGER NOT NULL,
    last_failed_at  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (destination_id, event_id) -- one per destination and event: adding again updates
) STRICT;

-- Listing, counting and trimming a destination's dead letters, newest first.
CREATE INDEX dead_letters_destination_id_idx ON dead_letters (destination_id, id DESC);

CREATE TABLE delivery_attempts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused; the log's order
    destination_id INTEGER NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
    at             INTEGER NOT NULL, -- for an aggregate of successes: the end of its window
    success        INTEGER NOT NULL,
    count          INTEGER NOT NULL,
    first_event_id INTEGER NOT NULL,
    last_event_id  INTEGER NOT NULL,
    status_code    INTEGER NOT NULL,
    error          TEXT    NOT NULL,
    duration_ms    INTEGER NOT NULL, -- for an aggregate: the mean
    test           INTEGER NOT NULL
) STRICT;

CREATE INDEX delivery_attempts_destination_id_idx ON delivery_attempts (destination_id, id DESC);
