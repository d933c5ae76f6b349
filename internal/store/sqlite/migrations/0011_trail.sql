-- The tamper-evident trail (internal/trail): a Merkle tree over every event of the log, in id
-- order, and the signed checkpoints of it.
--
-- trail_hashes holds every hash the tree stores, keyed by golang.org/x/mod/sumdb/tlog's stored
-- hash index (a leaf's hash and every complete subtree's; about two per event). kind is set on
-- the leaves only (1 stored, 2 stream-only, 3 lost: the log lost it and the store had no copy,
-- 4 recovered: the log lost it and the leaf was made from the store's copy, 5 purged: a stored
-- event retention deleted); 0 above them.
-- Retention never deletes from it: proofs need the hashes after the payloads are gone.
CREATE TABLE trail_hashes (
    idx  INTEGER PRIMARY KEY,
    hash BLOB    NOT NULL,
    kind INTEGER NOT NULL
) STRICT;

-- trail_tree is the tree's size: one row, moved forward only together with the hashes it adds.
CREATE TABLE trail_tree (
    one  INTEGER PRIMARY KEY CHECK (one = 1),
    size INTEGER NOT NULL
) STRICT;
INSERT INTO trail_tree (one, size) VALUES (1, 0);

-- trail_checkpoints holds every checkpoint ever signed, as the signed note's text. Not keyed by
-- size: two checkpoints of one size with different roots (a fork) must be kept to be found.
-- created_at is unix milliseconds (UTC).
CREATE TABLE trail_checkpoints (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    size       INTEGER NOT NULL,
    note       BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX trail_checkpoints_size ON trail_checkpoints (size);
