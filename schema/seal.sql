-- Indexes of a sealed (closed) day file, added by `tickrec seal` (run nightly by
-- tools/nightly-archive.sh) and by `tickrec archive` before compressing.
--
-- Why not while the day is live: each 500-tick commit across 128 symbols would dirty about one
-- index page per symbol (measured: 213K ticks/s with the time index against 1.26M without, and
-- 56 against 37 bytes/tick). Built once over a closed day they cost one sort, and turn the
-- per-symbol queries from a scan of the whole day into a seek:
--   ticks_by_symbol       (sym, seq)       `query recent`: the newest n of one symbol
--   ticks_by_symbol_time  (sym, ts_event)  `query range`: one symbol between two times
-- A late tick written into a sealed day just maintains them.
CREATE INDEX IF NOT EXISTS ticks_by_symbol ON ticks (sym);
CREATE INDEX IF NOT EXISTS ticks_by_symbol_time ON ticks (sym, ts_event);
