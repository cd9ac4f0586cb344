//! tickrec: a high-frequency market tick recorder.
//!
//! Data path, in the order ticks flow:
//! `fix` (framing, decoding into ticks, sessions) → `tick` (the value) → `pipeline` (rings,
//! channel, batch writer) → `store` (daily SQLite files: layout, schema, writer, reader) →
//! `query`. Text formats live in `format`; `ingest` feeds text through the pipeline; `record`
//! runs FIX gateways into a recorder; `synth` generates quotes. Readers of committed ticks:
//! `query`, `export`, `bars`, `tail` (which yields the CPU, and steps aside while the recorder
//! waits for one, through `priority`); `publish` fans commits out to subscribers. The edge
//! (`config`, `service`, `shutdown`, `metrics`, `auth`, `slots`) turns files and signals into
//! typed options for the core, checks the token of who connects and bounds what connections
//! may take. The command line, the demo and the bench live in the binary (`src/bin/tickrec/`).

pub mod auth;
pub mod bars;
pub mod civil;
pub mod clock;
pub mod config;
pub mod export;
pub mod fix;
pub mod format;
pub mod fsutil;
pub mod http;
pub mod ingest;
pub mod intern;
pub mod json_archive;
pub mod legacy_json;
pub mod metrics;
pub mod migrate;
pub mod pipeline;
pub mod priority;
pub mod procstat;
pub mod publish;
pub mod query;
pub mod record;
pub mod service;
pub mod shutdown;
pub mod slots;
pub mod spill;
pub mod store;
pub mod synth;
pub mod tail;
pub mod tick;
pub mod verify;
