-- tickrec day file, schema version 8 (PRAGMA user_version = 8).
--
-- One SQLite file per UTC day of ts_event: <base>/YYYY/MM/ticks_YYYY-MM-DD.db, WAL mode.
-- This file is the single source of truth: the recorder applies it verbatim to every new day
-- file (src/store/schema.rs), and upgrades older files step by step (schema/upgrades/).
--
-- USER CONTRACT: read the view ticks_v, never the tables. Its columns are
--   seq          gap-free recording order within this file, from 1 (a reader's resume cursor)
--   symbol       instrument name, e.g. EURUSD
--   ts_event_ns  event time, integer nanoseconds since 1970-01-01 UTC
--   ts_event     the same as ISO-8601 UTC text with nanoseconds, e.g. 2026-11-23T10:00:00.123456789Z
--   ts_recv_ns   receive time, integer nanoseconds since 1970-01-01 UTC
--   bid, ask     prices (REAL for fractions, INTEGER for whole numbers; NULL when a side is absent)
--   bid_size, ask_size   sizes, same typing
--   source       liquidity provider / session name
-- The REAL columns print as given in the sqlite3 shell (1.08502 shows as 1.08502); the exact
-- decimal text, trailing zeros included, comes from `tickrec query`.
--
-- PHYSICAL LAYOUT (why, in numbers). One rowid table, append-only, no secondary index while the
-- day is live: rowid = seq, so every 500-tick commit appends to the right edge of one B-tree and
-- dirties a handful of pages. A (symbol, time) index would dirty about one page per symbol per
-- commit (128 symbols: ~128 pages for 500 ticks): a sixth of the insert rate and half again the
-- bytes (last row of the table below). Compactness comes from SQLite's variable-length
-- integers, so every column is an integer chosen to be small:
--   sym, src     ids into symbols/sources; 0 and 1 take no payload byte at all
--   ts_event     nanoseconds since this file's midnight (< 8.64e13: 6 bytes instead of 8)
--   ts_recv      ts_recv - ts_event in nanoseconds (network + queue delay: 3-4 bytes, not 8)
--   bid, ask, bid_size, ask_size
--                exact decimals packed as (mantissa << 4 | k): k in 1..10 means k-1 decimal
--                places as given, k in 11..15 means mantissa * 10^(k-10). 1.08502 -> 1736037
--                (3 bytes), 151.234 -> 3 bytes, a size of 1000000 -> 175 (2 bytes).
--                ask, when bid is there with the same k: (ask - bid) << 4, low bits 0 (no
--                packed decimal has k = 0): a spread of 0.00012 -> 192 (2 bytes, not 3);
--                otherwise its own code (schema version 6; tick::Decimal::stored_ask).
--   Never REAL: a REAL takes 8 bytes and cannot hold 1.08502 exactly.
-- Measured with `cargo bench --bench schema_layouts` (2M generated FX ticks over one day,
-- 128 symbols, receive delay 20-250 us, WAL, synchronous=NORMAL, 500-tick transactions, 2-core
-- machine, one run):
--   ticks/s   bytes/tick  layout
--   1260863      37.2     compact: day-relative ns, recv delta, packed decimals, ids (version 5)
--   1390586      35.0     the same, ask as its distance from bid (this file; measured in a later
--                         run, where the line above read 1220814 ticks/s, 37.2 bytes/tick)
--   1223847      44.4     absolute ns for ts_event and ts_recv, otherwise the same
--    999756      65.1     naive: absolute ns, REAL prices/sizes, TEXT symbol and source
--    213399      56.3     this file + index (sym, ts_event) maintained on every commit
-- Sizes that repeat were not taken: a size stored only when it changed needs the symbol's
-- previous row to read a row, and one row alone must read whole (recent, the directory's
-- seeks, salvage). Sizes in round lots already pack into one or two bytes.
-- WITHOUT ROWID was not kept: its key must start with (sym, ts_event) to help queries, which
-- is the live index again, and seq (the resume cursor) would no longer be the rowid.
--
-- LIFECYCLE. A file is "live" while its day is being written: queries of one symbol go through
-- the per-transaction directory below (batches, batch_dirs). Sealing a closed day folds its WAL
-- in and keeps the directory as its query structure, adding nothing: a sealed day is the size
-- it was live (the alternatives measured against each other are in schema/seal.sql: the
-- covering per-tick indexes earlier versions built, 86.5 bytes/tick for 2.9 ms against 36.9 for
-- 3.4 ms). A file from before the directory gets packed directory rows for its ticks in
-- arrival order when sealed (their rows cannot be regrouped without renumbering seq), and its
-- asks stored as distances. `cargo bench --bench seal`, 2M ticks, 128 symbols, random ns, a
-- version-4 day of 37.3 bytes/tick; one symbol's hour, whole `tickrec query` process / in
-- one process (details in schema/seal.sql):
--   36.0 bytes/tick  4.0 / 1.5 ms  packed directory rows (this)
--   64.4             3.3 / 1.2 ms  slim indexes (sym), (sym, ts_event) (the previous seal)
--   88.5             3.1 ms        covering index (the seal before that)
--   54.3             - / 0.4 ms    rewritten clustered WITHOUT ROWID (sym, ts_event, seq), seq a
--                                  column with its own index (37.3 without it, but then a
--                                  `tail` cursor or `recent` scans the day)
--   14.5             3.9 ms cold   the Parquet archive, read in place (the 10M-tick day of
--                                  `tickrec bench`; schema/parquet.md)
--
-- LIVE-DAY QUERY STRUCTURE, measured against the alternatives with `tickrec bench` (10M ticks,
-- 128 symbols, one day, 2-core machine; "1 h of 1 symbol": streamed rows/s and first row on the
-- live day; writer: ticks/s over the honest ceiling, which moves 0.78-0.95 between runs here, so
-- the directory's cost was also measured A/B against the build without it, alternating, 3M
-- ticks, three pairs: without 1.34-1.41M ticks/s, with one row per 8 commits 1.31-1.42M):
--   structure                              1 h of 1 symbol     first row  writer cost  bytes/tick
--   none (scan the day, version 4)            9,368 ticks/s      342 ms        -          38.07
--   one directory row per commit            426,193 ticks/s      6.5 ms      17% (A/B)    38.65
--     + running max/lag (two index seeks)   667,195 ticks/s      3.2 ms      17%          38.71
--   one row per up to 8 commits             699,364 ticks/s      3.2 ms      none seen    39.0
--   up to 16 commits, at most ~3.6 KB (this)  0.90-1.25M/s        1.8-2.2 ms  none seen    38.6
--     the same while the writer appends at full speed  0.45M/s     5.5 ms
--   (sym, ts_event) index kept live         index speed (sealed: 1.58M/s)     83%          56.3
-- One row per commit dirtied three more pages per 500-tick commit (two tables and an index);
-- one row per 8 commits dirties one page per 8 commits, but its ~2 KB rows (128 symbols) left
-- half of every directory page free; a row closed before it passes ~3.6 KB fills a page
-- (the 2M-tick random-ns day: 38.2 -> 37.9 bytes/tick). recent 100 on the live day: 860 us
-- without the directory, 555 us with it (sealed 494 us; each includes opening the file and
-- SQLite parsing its schema, about 450 us). While the writer appends at full speed the reader
-- shares two busy cores, and the newest commits no row covers yet (up to ~13, ~6,500 ticks) are
-- scanned by symbol: recent 100 p50 1.2 ms, against 150-170 us once the writer is done. Rows of
-- 8 commits would halve that scan and give back the 0.4 byte/tick of page space measured above.
-- That scan is not what costs most: with a row per commit (no tail left to scan; `bench --only
-- queries`, same machine and hour) recent 100 while writing took 925 us against 1,211 us, and
-- the hour 0.58M against 0.54M ticks/s. Nor is a shortage of CPU: timed on the reader thread's
-- own clock (CLOCK_THREAD_CPUTIME_ID), a recent 100 while writing spent 0.90 ms of its own CPU
-- for 0.91-1.19 ms of wall time. `perf` showed where: SQLite re-prepared every statement with
-- a bound `LIMIT ?` (14 %: it plans with the value); the first query after a commit unmapped
-- every page the previous query, an hour's range, had mapped (28 %); and the writer and the
-- reader met on SQLite's process-wide page-cache and allocation mutexes. Readers now keep
-- their plans (SQLITE_DBCONFIG_ENABLE_QPSG), queries of a few pages run on a reader of their
-- own without the memory map (src/store/reader.rs, `Reach`), and SQLite is compiled without
-- the two mutexes (.cargo/config.toml): recent 100 while writing 0.45-0.65 ms over seven runs
-- (five at or under 0.50), about 0.43 ms of it the reader's own CPU; once the writer is done
-- 120 us. The hour while writing went from 0.58-0.59M to 0.44-0.55M ticks/s (1.1-1.3M once the
-- writer is done; A/B in one sitting): unmapping the ~1,000 pages an hour maps, which the next
-- recent paid before, is the range's own cost now. After each commit those pages are read again,
-- because SQLite drops a connection's cache at every new snapshot.
-- Symbol blocks (writer.symbol_blocks), where they are kept, on a machine half as fast as the
-- one above:
--   in this file (the blocks table below, written in the commit's transaction), `tickrec bench
--   --only queries`, five runs on / five off:
--     1 h of 1 symbol while the writer appends  0.94-1.39M (median 0.96M) / 0.30-0.40M ticks/s,
--                                               first row 2.1-3.2 / 5.4-8.0 ms
--     the same, writer done                     2.1-4.7M / 0.59-1.03M ticks/s
--     recent 100, writing / done                430-635 / 645-934 us; 76-151 / 164-607 us
--     writer alone (--only tails, 6 runs a side) 722-877K / 789-956K ticks/s (median -12 %;
--                                               --only writer, later: 0.70-0.72 x the ceiling
--                                               against 0.90-0.91)
--     live bytes/tick                           50.0 / 36.4 (seal deletes the blocks: 3-4 s)
--   The blocks cost their bytes written twice (WAL, then checkpoint), 13.6 a tick of this
--   random-ns day, and their encoding on the writer's thread. Hence they were off by default.
--   beside this file (ticks_<day>.blocks, .blockidx, .blocktail: src/store/blockfile.rs),
--   built by a thread of their own from each directory row's committed batches, plus per-commit
--   runs for the ticks no directory row covers yet, appended by the writer after each commit
--   (this, on by default); three runs on / off, alternating:
--     1 h of 1 symbol while the writer appends  1.04-1.21M / 0.30-0.37M ticks/s,
--                                               first row 2.4 / 6.1-7.0 ms
--     the same, writer done                     2.9-3.5M / 0.73-1.00M ticks/s
--     recent 100, writing / done                471-544 / 698-830 us; 127-173 / 168-206 us
--     writer alone (--only writer, 3M ticks)    947-982K / 925-993K ticks/s (median -2 %)
--     live bytes/tick                           36.4 + 12.6 beside it / 36.4 (seal removes them)
--   The writer copies each tick's integers for the builder (its CPU per tick unchanged within
--   the noise); end to end the builder spends 79-98 ns of CPU a tick (tools/thread-cpu.py).
-- Query readers with and without SQLite's memory map (the writer keeps its own), with the
-- blocks beside the file, `tickrec bench --only queries --ticks 3000000`, three runs a side,
-- alternating; without is kept (src/store/reader.rs, `Reach`): every change to the process's
-- mappings, made anew at each snapshot of a growing file, interrupts the writer's CPU.
--     1 h of 1 symbol while the writer appends  0.93-1.18M / 1.38-1.73M ticks/s,
--                                               first row 0.77-0.82 / 0.53-0.59 ms
--     the same, writer done                     2.0-2.6M / 2.7-3.7M ticks/s
--     recent 100 while writing                  324-367 / 342-354 us
--     the writer beside that reader             0.80-0.90 / 0.91-0.96 x its ceiling

CREATE TABLE file_info (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    day          TEXT    NOT NULL,          -- YYYY-MM-DD, the UTC day this file holds
    day_start_ns INTEGER NOT NULL,          -- that day's midnight, ns since 1970 UTC
    created_ns   INTEGER NOT NULL,
    created_by   TEXT    NOT NULL           -- "tickrec <version>"
);

CREATE TABLE symbols (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE sources (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

CREATE TABLE ticks (
    seq      INTEGER PRIMARY KEY,           -- rowid; 1, 2, 3, ... with no gap
    sym      INTEGER NOT NULL,              -- symbols.id
    ts_event INTEGER NOT NULL,              -- ns since file_info.day_start_ns
    ts_recv  INTEGER NOT NULL,              -- ns, relative to the absolute ts_event
    bid      INTEGER,                       -- packed decimal, NULL = side absent
    ask      INTEGER,
    bid_size INTEGER,
    ask_size INTEGER,
    src      INTEGER NOT NULL               -- sources.id
);

-- Version 2 and 3 files: FIX sessions keyed by source name (superseded by `marks` in version 4,
-- which keys a session by its identity; still read when no mark exists). Kept for upgrades.
CREATE TABLE fix_sessions (
    src              INTEGER PRIMARY KEY,   -- sources.id of the session
    next_inbound_seq INTEGER NOT NULL,      -- next MsgSeqNum expected after the committed ticks
    updated_recv_ns  INTEGER NOT NULL       -- ts_recv of the last tick that moved it
);

-- Ticks imported by `tickrec migrate`, per source file: committed in the same transaction as
-- the ticks, so that a migration interrupted at any point resumes exactly where its commits
-- stopped, and a source file that grew since is imported from where it was. (Added in
-- version 3: schema/upgrades/0003_imports.sql.)
CREATE TABLE imports (
    file  TEXT PRIMARY KEY,                 -- the source file, relative to the migration's input folder
    ticks INTEGER NOT NULL                  -- how many of its ticks for this day are committed here
);

-- Streams whose position is committed with their ticks, in the same transaction: a FIX
-- session ("fix:FIX.4.4:SENDER->TARGET", next = the inbound MsgSeqNum to expect next) or an
-- ingested file ("ingest:<canonical path>#<fingerprint>", next = the first line not yet
-- committed). After a crash the stream resumes exactly after the last stored tick. Across day
-- files, the row with the newest updated_ns (the wall clock at commit) wins; every day file is
-- consulted. (Added in version 4: schema/upgrades/0004_marks.sql.)
CREATE TABLE marks (
    origin     TEXT PRIMARY KEY,
    next       INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
);

-- The directory (added in version 5: schema/upgrades/0005_batches.sql). The writer commits each
-- batch grouped by symbol (one symbol's ticks keep their arrival order), so that one symbol's
-- ticks of one commit are one contiguous seq range, and every few commits (up to 8, or at close)
-- records them in one row: the seq span, the ts_event bounds, and per commit, in seq order, how
-- many ticks of each symbol it holds (dir: varints, per commit the number of entries then
-- (sym, count) pairs). A live-day query of one symbol reads the rows that meet its time window
-- and fetches those seq ranges by rowid, instead of scanning the day (src/store/directory.rs);
-- the ticks after the last row (the writer's last few commits) are scanned. A row with a NULL
-- dir is a span read by scanning (rows from before version 5, rows salvaged by check --repair,
-- commits a crash left without their row) until `seal` covers it with packed rows: a dir that
-- starts with a 0 byte holds its runs packed, symbols then counts, zstd-compressed (version 7;
-- src/store/directory.rs, `pack`). cummax and lag bound the rows a time window can
-- meet: cummax never decreases along first_seq, and no row holds a tick more than lag behind
-- the cummax of the rows before it, so the rows meeting [lo, hi) lie between the first with
-- cummax >= lo and the first with cummax >= hi + lag.
-- Invariant: the rows tile seq 1..=k without gap or overlap, k <= max(seq) (tickrec check).
CREATE TABLE batches (
    first_seq INTEGER PRIMARY KEY,          -- seq of the span's first tick
    last_seq  INTEGER NOT NULL,
    ts_min    INTEGER NOT NULL,             -- smallest ts_event in it (ns since the midnight)
    ts_max    INTEGER NOT NULL,
    cummax    INTEGER NOT NULL,             -- largest ts_max of this and every earlier span
    lag       INTEGER NOT NULL,             -- largest (cummax before a span - its ts_min) so far
    dir       BLOB                          -- NULL: read by scanning
);
CREATE INDEX batches_by_cummax ON batches (cummax);

-- Symbol blocks (added in version 8: schema/upgrades/0008_blocks.sql): one symbol's ticks of
-- one directory row, packed (src/store/blocks.rs), keyed by the seq of its first one, so that a
-- query of one symbol reads ~50 blocks for an hour of a 10M-tick day instead of one page per run
-- of its ticks. The writer now keeps them beside the file, in ticks_<day>.blocks and
-- ticks_<day>.blockidx (src/store/blockfile.rs), built off its thread; this table holds the
-- blocks of files written before that, and readers still read them. A second copy, never the
-- record: a reader uses a block only when it holds exactly the ticks the directory row gives
-- the symbol, else it reads the rows.
-- Invariant: the block keyed k holds, in seq order, exactly the ticks of the one symbol whose
-- runs in one directory row start at k (tickrec check compares every block with its rows).
CREATE TABLE blocks (
    seq  INTEGER PRIMARY KEY,               -- seq of the symbol's first tick in the row
    data BLOB NOT NULL
);

CREATE VIEW ticks_v AS
SELECT
    t.seq                                      AS seq,
    s.name                                     AS symbol,
    t.ts_event + f.day_start_ns                AS ts_event_ns,
    strftime('%Y-%m-%dT%H:%M:%S', (t.ts_event + f.day_start_ns) / 1000000000, 'unixepoch')
        || '.' || substr('00000000' || ((t.ts_event + f.day_start_ns) % 1000000000), -9)
        || 'Z'                                 AS ts_event,
    t.ts_event + f.day_start_ns + t.ts_recv    AS ts_recv_ns,
    CASE t.bid & 15 WHEN 1 THEN t.bid >> 4 WHEN 2 THEN (t.bid >> 4) / 1e1
        WHEN 3 THEN (t.bid >> 4) / 1e2 WHEN 4 THEN (t.bid >> 4) / 1e3 WHEN 5 THEN (t.bid >> 4) / 1e4
        WHEN 6 THEN (t.bid >> 4) / 1e5 WHEN 7 THEN (t.bid >> 4) / 1e6 WHEN 8 THEN (t.bid >> 4) / 1e7
        WHEN 9 THEN (t.bid >> 4) / 1e8 WHEN 10 THEN (t.bid >> 4) / 1e9
        ELSE (t.bid >> 4) * CASE t.bid & 15 WHEN 11 THEN 10 WHEN 12 THEN 100
            WHEN 13 THEN 1000 WHEN 14 THEN 10000 ELSE 100000 END END   AS bid,
    CASE t.ask_code & 15 WHEN 1 THEN t.ask_code >> 4 WHEN 2 THEN (t.ask_code >> 4) / 1e1
        WHEN 3 THEN (t.ask_code >> 4) / 1e2 WHEN 4 THEN (t.ask_code >> 4) / 1e3 WHEN 5 THEN (t.ask_code >> 4) / 1e4
        WHEN 6 THEN (t.ask_code >> 4) / 1e5 WHEN 7 THEN (t.ask_code >> 4) / 1e6 WHEN 8 THEN (t.ask_code >> 4) / 1e7
        WHEN 9 THEN (t.ask_code >> 4) / 1e8 WHEN 10 THEN (t.ask_code >> 4) / 1e9
        ELSE (t.ask_code >> 4) * CASE t.ask_code & 15 WHEN 11 THEN 10 WHEN 12 THEN 100
            WHEN 13 THEN 1000 WHEN 14 THEN 10000 ELSE 100000 END END   AS ask,
    CASE t.bid_size & 15 WHEN 1 THEN t.bid_size >> 4 WHEN 2 THEN (t.bid_size >> 4) / 1e1
        WHEN 3 THEN (t.bid_size >> 4) / 1e2 WHEN 4 THEN (t.bid_size >> 4) / 1e3
        WHEN 5 THEN (t.bid_size >> 4) / 1e4 WHEN 6 THEN (t.bid_size >> 4) / 1e5
        WHEN 7 THEN (t.bid_size >> 4) / 1e6 WHEN 8 THEN (t.bid_size >> 4) / 1e7
        WHEN 9 THEN (t.bid_size >> 4) / 1e8 WHEN 10 THEN (t.bid_size >> 4) / 1e9
        ELSE (t.bid_size >> 4) * CASE t.bid_size & 15 WHEN 11 THEN 10 WHEN 12 THEN 100
            WHEN 13 THEN 1000 WHEN 14 THEN 10000 ELSE 100000 END END   AS bid_size,
    CASE t.ask_size & 15 WHEN 1 THEN t.ask_size >> 4 WHEN 2 THEN (t.ask_size >> 4) / 1e1
        WHEN 3 THEN (t.ask_size >> 4) / 1e2 WHEN 4 THEN (t.ask_size >> 4) / 1e3
        WHEN 5 THEN (t.ask_size >> 4) / 1e4 WHEN 6 THEN (t.ask_size >> 4) / 1e5
        WHEN 7 THEN (t.ask_size >> 4) / 1e6 WHEN 8 THEN (t.ask_size >> 4) / 1e7
        WHEN 9 THEN (t.ask_size >> 4) / 1e8 WHEN 10 THEN (t.ask_size >> 4) / 1e9
        ELSE (t.ask_size >> 4) * CASE t.ask_size & 15 WHEN 11 THEN 10 WHEN 12 THEN 100
            WHEN 13 THEN 1000 WHEN 14 THEN 10000 ELSE 100000 END END   AS ask_size,
    r.name                                     AS source
FROM (SELECT *, CASE WHEN ask & 15 = 0 THEN (((bid >> 4) + (ask >> 4)) << 4) | (bid & 15)
             ELSE ask END AS ask_code FROM ticks) t
JOIN file_info f ON f.id = 1
JOIN symbols s ON s.id = t.sym
JOIN sources r ON r.id = t.src;
