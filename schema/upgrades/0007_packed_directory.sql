-- Schema version 6 -> 7: a directory row may be packed (its dir starts with a 0 byte: see
-- src/store/directory.rs, `pack`). `tickrec seal` packs the rows it builds for ticks the
-- directory did not name (a day from before it). No table changes; the version keeps an older
-- tickrec, which would misread a packed row, from opening such a file.
SELECT 1;
