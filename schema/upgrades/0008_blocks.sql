-- Schema version 7 -> 8: symbol blocks (src/store/blocks.rs). The writer adds one per symbol
-- with each directory row from now on; rows written before have none and are read as before.
CREATE TABLE IF NOT EXISTS blocks (
    seq  INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
