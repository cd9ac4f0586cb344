-- Schema version 4 -> 5: the per-transaction directory (see schema/ticks.sql). The rows
-- written before it become one span that readers scan, as they did.
CREATE TABLE batches (
    first_seq INTEGER PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    ts_min    INTEGER NOT NULL,
    ts_max    INTEGER NOT NULL,
    cummax    INTEGER NOT NULL,
    lag       INTEGER NOT NULL
);
CREATE INDEX batches_by_cummax ON batches (cummax);
CREATE TABLE batch_dirs (
    first_seq INTEGER PRIMARY KEY,
    dir       BLOB NOT NULL
);
INSERT INTO batches (first_seq, last_seq, ts_min, ts_max, cummax, lag)
    SELECT min(seq), max(seq), min(ts_event), max(ts_event), max(ts_event), 0 FROM ticks
    HAVING count(*) > 0;
