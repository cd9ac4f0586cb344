-- Indexes for day files from before the per-transaction directory (schema version 4 and
-- earlier, or upgraded to version 5 with ticks already in them): `tickrec seal` builds them on
-- such a closed day, `tickrec archive` leaves them out, the `.db.zst` read cache builds them on
-- its copies. A day whose directory covers it from its first tick gets none: the directory
-- answers its queries, and sealing drops these indexes if an earlier version built them
-- (store/archive.rs, `seal_day`).
--
-- Measured on a 2M-tick day (128 symbols, random ns times), one symbol over one hour, the
-- whole `tickrec query range` process (21 runs, median):
--   day file as sealed now (the directory; no index)     36.9 bytes/tick   3.2-3.5 ms
--   with these indexes (sealed by earlier versions)       87.5 bytes/tick   2.7 ms
--   archived as Parquet, queried in place                  13.3 bytes/tick   3.2 ms
-- The indexes buy half a millisecond for 50 bytes per tick, so a closed day keeps its
-- directory. What they are:
--   ticks_by_symbol       (sym, seq)                 `query recent`: the newest n of one symbol
--   ticks_by_symbol_time  (sym, ts_event, seq, ...)  `query range`: one symbol between two times
-- The time index covers every column and orders ties by seq: a range is one ordered walk of
-- one index. A late tick written into an indexed day just maintains them.
CREATE INDEX IF NOT EXISTS ticks_by_symbol ON ticks (sym);
CREATE INDEX IF NOT EXISTS ticks_by_symbol_time
    ON ticks (sym, ts_event, seq, ts_recv, bid, ask, bid_size, ask_size, src);
