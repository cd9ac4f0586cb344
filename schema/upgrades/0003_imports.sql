-- Schema version 2 -> 3: per-source-file import counters for `tickrec migrate` (see schema/ticks.sql).
CREATE TABLE imports (
    file  TEXT PRIMARY KEY,                 -- the source file, relative to the migration's input folder
    ticks INTEGER NOT NULL                  -- how many of its ticks for this day are committed here
);
