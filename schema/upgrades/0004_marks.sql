-- Schema version 3 -> 4: committed stream positions by origin (see schema/ticks.sql).
CREATE TABLE marks (
    origin     TEXT PRIMARY KEY,
    next       INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
);
