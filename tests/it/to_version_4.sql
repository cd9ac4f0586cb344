-- A day file as version 4 wrote it, made of one this version wrote: rows in arrival order
-- (by event time), renumbered, the ask as its own code, no directory. For the tests and
-- `cargo bench --bench seal`.
CREATE TABLE arrival AS SELECT * FROM ticks ORDER BY ts_event, seq;
DELETE FROM ticks;
INSERT INTO ticks (seq, sym, ts_event, ts_recv, bid, ask, bid_size, ask_size, src)
    SELECT row_number() OVER (ORDER BY ts_event, seq), sym, ts_event, ts_recv, bid,
           CASE WHEN ask & 15 = 0 THEN (((bid >> 4) + (ask >> 4)) << 4) | (bid & 15)
                ELSE ask END,
           bid_size, ask_size, src
    FROM arrival ORDER BY ts_event, seq;
DROP TABLE arrival;
DROP TABLE batches;
DROP TABLE blocks;
PRAGMA user_version = 4;
VACUUM;
