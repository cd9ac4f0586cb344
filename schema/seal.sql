-- Indexes of a sealed (closed) day file, added by `tickrec seal` (run nightly by
-- tools/nightly-archive.sh) and by `tickrec archive` before compressing.
--
-- Why not while the day is live: each 500-tick commit across 128 symbols would dirty about one
-- index page per symbol (measured: 213K ticks/s with the time index against 1.26M without, and
-- 56 against 37 bytes/tick). Built once over a closed day they cost one sort, and turn the
-- per-symbol queries from a scan of the whole day into a seek:
--   ticks_by_symbol       (sym, seq)                 `query recent`: the newest n of one symbol
--   ticks_by_symbol_time  (sym, ts_event, seq, ...)  `query range`: one symbol between two times
-- The time index covers every column and orders ties by seq, so a range is one ordered walk of
-- one index: no lookup into the table per row, no sort (measured on a 10M-tick day, one hour
-- of one symbol as CSV: 495K ticks/s with (sym, ts_event) alone, 701K covering but sorting
-- ties, see README for the figure with this one). It makes a sealed day about 2.3x the live
-- size; archives compress it.
-- A late tick written into a sealed day just maintains them.
CREATE INDEX IF NOT EXISTS ticks_by_symbol ON ticks (sym);
CREATE INDEX IF NOT EXISTS ticks_by_symbol_time
    ON ticks (sym, ts_event, seq, ts_recv, bid, ask, bid_size, ask_size, src);
