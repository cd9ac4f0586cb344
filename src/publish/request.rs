//! What a subscriber asks for: its request lines, read within their bounds (a deadline for the
//! first, a length for each), parsed, and resolved against the store; and what its symbols
//! and sources say of each tick, asked for every line it is sent.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use serde::Deserialize;

use super::fanout::Queue;
use crate::intern::Names;
use crate::store::reader::{Store, Symbols};
use crate::tail::{Start, Tail};
use crate::tick::{SourceId, SymbolId};

/// What a request asks, parsed.
pub(super) struct Asked<R> {
    pub(super) symbols: Symbols,
    /// Their names (`None`: every symbol).
    pub(super) names: Option<HashSet<String>>,
    /// The sources (liquidity providers) whose ticks it wants (`None`: every source).
    pub(super) sources: Option<HashSet<String>>,
    /// Where its replay starts (`R`: a [`Start`], then the [`Tail`] resolved from it).
    pub(super) start: R,
    /// Conflated: each symbol's latest committed tick at most this often (never with a
    /// replay: it leaves ticks out).
    pub(super) conflate: Option<Duration>,
}

/// What a subscriber asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Request {
    pub(super) symbols: Vec<String>,
    /// Only the ticks of these sources (`source`, the liquidity provider's name); absent or
    /// `["*"]`: every source.
    #[serde(default)]
    pub(super) sources: Option<Vec<String>>,
    #[serde(default)]
    pub(super) from: Option<String>,
    #[serde(default)]
    pub(super) from_time: Option<String>,
    /// The `[publish] token_file` secret, asked of a first line when one is configured (a
    /// later line's is not looked at: the connection is already let in).
    #[serde(default)]
    pub(super) token: Option<String>,
    /// Conflated ([`super::conflate`]): each symbol's latest committed tick at most once in
    /// this many milliseconds instead of every tick.
    #[serde(default)]
    pub(super) conflate_ms: Option<u64>,
}

/// The symbols and sources a subscriber wants: by name (`None`: every one), and what that
/// says of each id met so far, by id (ids are dense from 0, bounded by the recorder's names). A
/// `HashMap` by id took 6.4 ns a lookup against 0.6 (128 ids, 12M lookups, one thread): eight
/// subscribers of named symbols beside a feed of 1.5M ticks a second ask 12M times a second.
pub(super) struct Wants {
    pub(super) names: Option<HashSet<String>>,
    pub(super) ids: Vec<Option<bool>>,
    pub(super) sources: Option<HashSet<String>>,
    source_ids: Vec<Option<bool>>,
}

impl Wants {
    pub(super) fn new(names: Option<HashSet<String>>, sources: Option<HashSet<String>>) -> Wants {
        Wants {
            names,
            ids: Default::default(),
            sources,
            source_ids: Default::default(),
        }
    }

    /// Every tick of every symbol and source.
    pub(super) fn everything(&self) -> bool {
        self.names.is_none() && self.sources.is_none()
    }

    pub(super) fn wants_name(&self, name: &str) -> bool {
        self.names.as_ref().is_none_or(|w| w.contains(name))
    }

    pub(super) fn wants_source_name(&self, name: &str) -> bool {
        self.sources.as_ref().is_none_or(|w| w.contains(name))
    }

    /// Whether a tick of `symbol` from `source` is for this subscriber, by their names.
    pub(super) fn takes(&self, symbol: &str, source: &str) -> bool {
        self.wants_name(symbol) && self.wants_source_name(source)
    }

    /// Whether a line about `symbols` (and `source`) is for this subscriber: about one of its
    /// symbols, or about no symbol in particular, and not about a source it does not want.
    pub(super) fn any(&self, symbols: &[String], source: Option<&str>) -> bool {
        (symbols.is_empty() || symbols.iter().any(|s| self.wants_name(s)))
            && source.is_none_or(|s| self.wants_source_name(s))
    }

    /// Asked of every line of every commit by each subscriber thread of named symbols or
    /// sources.
    pub(super) fn wants(&mut self, names: &Names, id: SymbolId, source: SourceId) -> bool {
        known(&self.names, &mut self.ids, id.0, |i| {
            names.symbol_name(SymbolId(i))
        }) && known(&self.sources, &mut self.source_ids, source.0, |i| {
            names.source_name(SourceId(i))
        })
    }
}

/// Whether `want` takes the name of id `i` (`None`: every name), from `memo` once it was met.
fn known(
    want: &Option<HashSet<String>>,
    memo: &mut Vec<Option<bool>>,
    i: u32,
    name: impl FnOnce(u32) -> Option<std::sync::Arc<str>>,
) -> bool {
    let Some(w) = want else {
        return true;
    };
    let at = i as usize;
    if let Some(Some(known)) = memo.get(at) {
        return *known;
    }
    let known = name(i).is_some_and(|n| w.contains(&*n));
    if memo.len() <= at {
        memo.resize(at + 1, None);
    }
    memo[at] = Some(known);
    known
}

/// A parsed request with its replay's start resolved against the store (a cursor past what it
/// holds is refused, with the reason).
pub(super) fn resolve(
    store: &Store,
    asked: Asked<Option<Start>>,
) -> Result<Asked<Option<Tail>>, String> {
    let start = asked
        .start
        .map(|start| {
            Tail::new(store.clone(), asked.symbols.clone(), start)
                .map(|t| t.sources(asked.sources.clone()))
        })
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(Asked {
        symbols: asked.symbols,
        names: asked.names,
        sources: asked.sources,
        start,
        conflate: asked.conflate,
    })
}

/// The symbols as a subscriber named them (`*` for every symbol).
pub(super) fn as_named(symbols: &Symbols) -> Vec<String> {
    match symbols {
        Symbols::All => vec!["*".to_owned()],
        Symbols::Named(names) => names.clone(),
    }
}

/// Named sources, sorted (none: every source).
pub(super) fn as_listed(sources: &Option<HashSet<String>>) -> Vec<String> {
    let mut listed: Vec<String> = sources.iter().flatten().cloned().collect();
    listed.sort_unstable();
    listed
}

/// Longest request line a subscriber may send.
pub(super) const MAX_REQUEST_LINE: u64 = 64 * 1024;

/// A subscriber's socket as its request lines are read: everything read before the deadline
/// is lifted must come by then, so that a peer trickling a byte at a time cannot keep a place
/// past [`REQUEST_TIMEOUT`](super::REQUEST_TIMEOUT) without ever sending a request.
pub(super) struct Incoming {
    pub(super) stream: TcpStream,
    pub(super) deadline: Option<(std::time::Instant, Duration)>,
}

impl Incoming {
    pub(super) fn within(stream: TcpStream, limit: Duration) -> Incoming {
        Incoming {
            stream,
            deadline: Some((std::time::Instant::now() + limit, limit)),
        }
    }

    /// From here on, reads wait as long as the peer takes.
    pub(super) fn lift_deadline(&mut self) {
        self.deadline = None;
        let _ = self.stream.set_read_timeout(None);
    }
}

impl std::io::Read for Incoming {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some((deadline, limit)) = self.deadline else {
            return self.stream.read(buf);
        };
        let late = || {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no whole request line within {} s", limit.as_secs_f64()),
            )
        };
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(late());
        }
        self.stream.set_read_timeout(Some(left))?;
        match self.stream.read(buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err(late())
            }
            r => r,
        }
    }
}

/// The subscriber's next request line, parsed (or why it is not a request); `None` at the end
/// of its stream. An I/O error (a reset, the first line's deadline) ends the reading.
pub(super) fn read_request(
    lines: &mut BufReader<Incoming>,
) -> std::io::Result<Option<Result<Request, String>>> {
    let mut line = String::new();
    let n = std::io::Read::take(&mut *lines, MAX_REQUEST_LINE).read_line(&mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') && n as u64 >= MAX_REQUEST_LINE {
        // The rest of an overlong line is not a request either: the reading ends.
        return Err(std::io::Error::other(format!(
            "a request line longer than {MAX_REQUEST_LINE} bytes"
        )));
    }
    Ok(Some(
        serde_json::from_str::<Request>(&line).map_err(|e| e.to_string()),
    ))
}

/// A subscriber's later lines, each a change of its symbols, handed to its thread through
/// `queue` until the connection ends. The end of the subscriber's stream (a client that only
/// listens may close its sending half) ends the reading, not the subscription; a failed read
/// (the peer reset the connection) ends the subscription at once.
pub(super) fn read_changes(
    mut lines: BufReader<Incoming>,
    queue: &Queue,
    peer: std::net::SocketAddr,
) {
    loop {
        match read_request(&mut lines) {
            Ok(Some(request)) => {
                queue.change(request);
                if queue.is_closed() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                if !queue.is_closed() {
                    tracing::debug!(%peer, error = %e, "publish: a subscriber's stream failed");
                    queue.close(format!("connection failed: {e}"));
                }
                return;
            }
        }
    }
}
