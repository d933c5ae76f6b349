-- Tiles (issue 15): the trail's tree is stored as the tiles of golang.org/x/mod/sumdb/tlog, of
-- height 8, instead of a row per hash. A tile (level, n) holds up to 256 hashes of the tree's
-- level 8*level (hashes: 32 bytes each), from which the 8 levels above are computed; a tile at
-- the tree's right edge is partial and is written again, wider, as the tree grows, so the table
-- always holds every hash of the tree at trail_tree.size. On level 0 (the leaves) kinds has one
-- byte per leaf (1 stored, 2 stream-only, 3 lost: the log lost it and the store had no copy,
-- 4 recovered: the log lost it and the leaf was made from the store's copy, 5 purged: a stored
-- event retention deleted); it is empty above. Retention never deletes from it: proofs need
-- the hashes after the payloads are gone.
CREATE TABLE trail_tiles (
    level  smallint NOT NULL,
    n      bigint   NOT NULL,
    hashes bytea    NOT NULL,
    kinds  bytea    NOT NULL,
    PRIMARY KEY (level, n)
);

-- trail_upgrade is how many leaves of the previous format (trail_hashes) the store has turned
-- into tiles: the store does it in Go when it migrates, in steps of its own transaction, then
-- drops trail_hashes and this table.
CREATE TABLE trail_upgrade (
    one       smallint PRIMARY KEY CHECK (one = 1),
    converted bigint   NOT NULL
);
INSERT INTO trail_upgrade (one, converted) VALUES (1, 0);
