-- Where the delivery engine stands (store.DeliveryPosition): one base row per partition of the
-- destinations (destination_id 0) and a row for each destination that is not at its partition's
-- base. No reference to destinations: base rows name none, and the engine removes a deleted
-- destination's row itself.

CREATE TABLE delivery_positions (
    partition      INTEGER NOT NULL,
    destination_id INTEGER NOT NULL,
    position       INTEGER NOT NULL, -- the last event id done; -1: start at the destination's updated_at
    known_id       INTEGER NOT NULL, -- base rows: the highest destination id the base stands for
    PRIMARY KEY (partition, destination_id)
) STRICT;
