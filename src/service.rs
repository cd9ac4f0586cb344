//! Wiring validated [`Options`] into a running [`Recorder`] with its storage backends.

use std::sync::Arc;

use crate::config::{Backend, Options};
use crate::intern::Names;
use crate::legacy_json::JsonSink;
use crate::pipeline::{Recorder, Sink};
use crate::store::reader::Store;
use crate::store::writer::{CommitObserver, SqliteSink};

/// Starts a recorder writing where `opts` says.
pub fn start_recorder(opts: &Options) -> std::io::Result<Recorder> {
    start_recorder_with(opts, Arc::new(Names::new(opts.pipeline.max_symbols)), None)
}

/// [`start_recorder`] over `names`, with `observer` told of every SQLite commit.
pub fn start_recorder_with(
    opts: &Options,
    names: Arc<Names>,
    observer: Option<Arc<dyn CommitObserver>>,
) -> std::io::Result<Recorder> {
    let sqlite = |names: Arc<Names>| -> Box<dyn Sink> {
        let sink = SqliteSink::new(&opts.db_path, names, opts.writer.clone());
        Box::new(match &observer {
            Some(o) => sink.with_observer(o.clone()),
            None => sink,
        })
    };
    let json = |names: Arc<Names>| -> Box<dyn Sink> {
        Box::new(JsonSink::new(
            &opts.json_path,
            names,
            &opts.writer.dead_letter_dirs,
        ))
    };
    // In dual mode SQLite comes first: it is the primary backend of the statistics.
    let builder = Recorder::builder_with(opts.pipeline.clone(), names);
    match opts.backend {
        Backend::Sqlite => builder.sink(sqlite),
        Backend::Json => builder.sink(json),
        Backend::Dual => builder.sink(sqlite).sink(json),
    }
    .start()
}

/// Read access to the store `opts` points at.
pub fn open_store(opts: &Options) -> Store {
    Store::new(&opts.db_path, opts.writer.sqlite.clone())
        .with_archive_cache(opts.archive_cache_bytes)
}
