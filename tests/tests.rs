//! Integration tests: real files on disk, real threads, the real binary as a child process.
//!
//! Modules:
//! - `pipeline`: store_tick → rings → channel → writer → day file, and back through queries.
//! - `rotation`: day files per UTC day of ts_event, crossing midnight with an injected clock.
//! - `failures`: the failure ladder (retry, split, dead letter) driven by real SQLite errors.
//! - `faults`: a really full disk (tmpfs), unwritable dead-letter locations, SIGTERM while stalled.
//! - `fix`: simulator → FIX over loopback → recorder, checked against what was sent.
//! - `quickfix`: interoperability with the QuickFIX engine, both directions.
//! - `acceptance`: QuickFIX's FIX 4.4 session acceptance definitions against `tickrec simulate`.
//! - `legacy`: the legacy JSON and dual storage modes.
//! - `migrate`: JSON history into day files exactly once, verification, archiving.
//! - `archive`: zstd archives of old days, read transparently; retention.
//! - `cli`: the `tickrec` binary: ingest, query, stats, configuration errors.
//! - `signal`: SIGINT to a child process under load loses no accepted tick.

mod it;
