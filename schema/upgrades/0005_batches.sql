-- Schema version 4 -> 5: the directory (see schema/ticks.sql). The rows written before it
-- become one span that readers scan, as they did.
CREATE TABLE batches (
    first_seq INTEGER PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    ts_min    INTEGER NOT NULL,
    ts_max    INTEGER NOT NULL,
    cummax    INTEGER NOT NULL,
    lag       INTEGER NOT NULL,
    dir       BLOB
);
CREATE INDEX batches_by_cummax ON batches (cummax);
INSERT INTO batches (first_seq, last_seq, ts_min, ts_max, cummax, lag, dir)
    SELECT min(seq), max(seq), min(ts_event), max(ts_event), max(ts_event), 0, NULL FROM ticks
    HAVING count(*) > 0;
