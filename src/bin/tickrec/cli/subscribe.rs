//! `tickrec subscribe`: a consumer of a recorder's live fan-out (`record --publish`), on its
//! host or another. It prints the committed ticks of its symbols as `tail` prints them and
//! keeps their cursor; whenever the connection ends (the recorder restarted, this consumer cut
//! off as too slow, the network gone) it connects again with that cursor, so that what it
//! prints has no gap and no tick twice.
//!
//! With `--conflate-ms`, it asks for a conflated stream (each symbol's latest committed tick
//! at most once an interval) and, reconnecting, starts again from the live ticks: a
//! conflated stream leaves ticks out, so it has no cursor to resume from.
//!
//! The cursor comes from the stream itself: the `subscribed` line of a replay says where it
//! starts (it always asks for one: `--from`, `--from-time`, the cursor file, or else the time
//! it started), each tick row advances it (the row's `seq` in the day of its `ts_event`), and
//! `replayed` and heartbeats carry the recorder's. Rows without a `seq` (the snapshot's) are
//! not printed: they may not be committed yet.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tickrec::shutdown::Shutdown;
use tickrec::tail::Cursor;
use tickrec::tick::Timestamp;

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// The recorder's fan-out (HOST:PORT, its [publish] listen)
    #[arg(value_name = "HOST:PORT")]
    pub addr: String,
    /// Symbols: A,B or all
    #[arg(long, default_value = "all", value_name = "A,B|all")]
    pub symbols: String,
    /// Sources (the liquidity providers' names, as in the rows' `source`): A,B or all
    #[arg(long, default_value = "all", value_name = "A,B|all")]
    pub sources: String,
    /// Resume after this cursor (DAY:SEQ, or the DAY:SEQ,DAY:SEQ a tail or subscribe printed)
    #[arg(long, value_name = "DAY:SEQ", conflicts_with = "from_time")]
    pub from: Option<String>,
    /// Start at the first tick recorded with an event time at or after this (RFC 3339 or a
    /// date); with neither this, --from nor a cursor file, the time it starts
    #[arg(long, value_name = "TIME")]
    pub from_time: Option<String>,
    /// Read the starting cursor from this file when it exists (unless --from… is given), and
    /// write the cursor reached to it (atomically) at most every 100 ms, at each reconnection
    /// and at the end
    #[arg(long, value_name = "FILE")]
    pub cursor_file: Option<PathBuf>,
    /// Append the rows to this file instead of standard output, kept in step with
    /// --cursor-file: on a restart, what was written after the cursor was last saved is cut
    /// off and written again, so the file holds every tick once even after a kill -9 or a
    /// power loss
    #[arg(long, value_name = "FILE", requires = "cursor_file")]
    pub out: Option<PathBuf>,
    /// A file whose first line is the token the recorder asks for ([publish] token_file), read
    /// again at each connection
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// How rows are printed, as they come (so not as a table, which is aligned only once
    /// it is complete)
    #[arg(long, value_enum, default_value_t = super::StreamFormat::Jsonl)]
    pub format: super::StreamFormat,
    /// Stop after this many ticks
    #[arg(long, value_name = "N")]
    pub max_ticks: Option<u64>,
    /// Only each symbol's latest committed tick, at most once in this many milliseconds
    /// (10–60000): for a screen, not a stream to resume (it leaves ticks out, so it has no
    /// cursor to start from and starts again from the live ticks when it reconnects)
    #[arg(
        long,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(tickrec::publish::CONFLATE_MS),
        conflicts_with_all = ["from", "from_time", "cursor_file"]
    )]
    pub conflate_ms: Option<u64>,
    /// Give up (exit 2) when no connection has held for this many seconds; by default it keeps
    /// trying until SIGINT/SIGTERM
    #[arg(long, value_name = "SECS")]
    pub give_up_after: Option<u64>,
}

/// A connection's first read waits at most this long for the recorder's answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads wake this often to see whether to stop and to save the cursor.
const READ_WAKE: Duration = Duration::from_millis(100);
/// The cursor file is written at most this often while ticks flow.
const SAVE_EVERY: Duration = Duration::from_millis(100);
/// Waits between connections: doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MOST: Duration = Duration::from_secs(5);
/// A line longer than this is not the recorder's.
const MAX_LINE: usize = 1 << 20;

/// How a connection ended.
enum End {
    /// Stopped (a signal, `--max-ticks`): the command ends.
    Done,
    /// Lost, why; whether it had been let in (then the waits start over).
    Lost(String, bool),
}

/// What the command holds across connections.
struct Consumer {
    out: super::output::Output,
    /// Where the next connection resumes; `None` before the first `subscribed`.
    cursor: Option<Cursor>,
    /// `--from-time` (or the start time) until a cursor is known.
    from_time: String,
    printed: u64,
    max_ticks: Option<u64>,
    cursor_file: Option<PathBuf>,
    saved: Option<(Cursor, Instant)>,
    /// The sources asked for (`None`: every source).
    sources: Option<Vec<String>>,
    /// Whether the unknown symbols, and the unknown sources, were told (once each).
    unknown_told: [bool; 2],
}

pub(super) fn run_subscribe(a: SubscribeArgs) -> anyhow::Result<ExitCode> {
    let symbols = super::listed_or_all(&a.symbols)
        .context("--symbols")?
        .unwrap_or_else(|| vec!["*".into()]);
    let sources = super::listed_or_all(&a.sources).context("--sources")?;
    let saved = super::output::read_saved(a.cursor_file.as_deref())?;
    let resumed = saved.filter(|_| a.from.is_none() && a.from_time.is_none());
    let out = super::output::Output::open(a.format.into(), a.out.as_deref(), resumed.as_ref())?;
    let cursor = match &a.from {
        Some(c) => Some(c.parse().map_err(|e| anyhow::anyhow!("--from: {e}"))?),
        None => resumed.map(|s| s.cursor),
    };
    let from_time = match &a.from_time {
        Some(t) => Timestamp::parse(t).context("--from-time")?.to_string(),
        None => tickrec::clock::Clock::now(&tickrec::clock::SystemClock).to_string(),
    };
    let stop = Shutdown::new();
    stop.install_signal_handler()?;
    let mut me = Consumer {
        out,
        cursor,
        from_time,
        printed: 0,
        max_ticks: a.max_ticks,
        cursor_file: a.cursor_file.clone(),
        saved: None,
        sources,
        unknown_told: [false; 2],
    };
    let give_up = a.give_up_after.map(Duration::from_secs);
    let mut wait = RETRY_FIRST;
    let mut held_since = Instant::now();
    let result = loop {
        if stop.is_requested() {
            break Ok(());
        }
        let end = match me.connection(&a, &symbols, &stop) {
            Ok(end) => end,
            Err(e) => break Err(e),
        };
        match end {
            End::Done => break Ok(()),
            End::Lost(why, let_in) => {
                if let_in {
                    wait = RETRY_FIRST;
                    held_since = Instant::now();
                }
                if let Some(limit) = give_up.filter(|l| held_since.elapsed() >= *l) {
                    break Err(anyhow::anyhow!(
                        "{}: no connection held for {} s, the last: {why}",
                        a.addr,
                        limit.as_secs()
                    ));
                }
                let from = match (&me.cursor, a.conflate_ms) {
                    (_, Some(_)) => "the live ticks (conflated)".to_owned(),
                    (Some(c), None) => format!("cursor {c}"),
                    (None, None) => format!("the time {}", me.from_time),
                };
                eprintln!(
                    "subscribe: {why}; connecting again in {} ms from {from}",
                    wait.as_millis()
                );
                if let Err(e) = me.save(true) {
                    break Err(e);
                }
                if stop.wait_timeout(wait) {
                    break Ok(());
                }
                wait = (wait * 2).min(RETRY_MOST);
            }
        }
    };
    let flushed = me.out.finish().context("writing the ticks");
    let saved = me.save(true);
    eprintln!(
        "subscribe: {} ticks; cursor {}",
        me.printed,
        me.cursor_text()
    );
    result.and(flushed).and(saved)?;
    Ok(ExitCode::SUCCESS)
}

impl Consumer {
    fn cursor_text(&self) -> String {
        self.cursor
            .as_ref()
            .map_or_else(|| "none yet".into(), ToString::to_string)
    }

    /// One connection, from its request to its end. An error ends the command: the recorder
    /// refused the request for good (a wrong token, a cursor past what it holds), or the output
    /// failed. A refusal for want of a place is an end like a disconnection.
    fn connection(
        &mut self,
        a: &SubscribeArgs,
        symbols: &[String],
        stop: &Shutdown,
    ) -> anyhow::Result<End> {
        let stream = match connect(&a.addr) {
            Ok(s) => s,
            Err(e) => {
                return Ok(End::Lost(
                    format!("cannot connect to {}: {e}", a.addr),
                    false,
                ))
            }
        };
        let mut request = serde_json::json!({ "symbols": symbols });
        if let Some(sources) = &self.sources {
            request["sources"] = sources.clone().into();
        }
        match (a.conflate_ms, &self.cursor) {
            (Some(ms), _) => request["conflate_ms"] = ms.into(),
            (None, Some(c)) => request["from"] = c.to_string().into(),
            (None, None) => request["from_time"] = self.from_time.clone().into(),
        }
        if let Some(f) = &a.token_file {
            let token = tickrec::auth::read_secret(f).context("--token-file")?;
            request["token"] = token.into();
        }
        let mut line = request.to_string().into_bytes();
        line.push(b'\n');
        if let Err(e) = (&stream).write_all(&line) {
            return Ok(End::Lost(format!("sending the request: {e}"), false));
        }
        let mut reader = BufReader::with_capacity(1 << 16, stream);
        let mut line = Vec::with_capacity(512);
        let mut let_in = false;
        let answered_by = Instant::now() + CONNECT_TIMEOUT;
        loop {
            if stop.is_requested() {
                return Ok(End::Done);
            }
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => {
                    return Ok(End::Lost(
                        "the recorder closed the connection".into(),
                        let_in,
                    ))
                }
                Ok(_) if line.last() != Some(&b'\n') => {
                    return Ok(End::Lost(
                        "the connection ended within a line".into(),
                        let_in,
                    ))
                }
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    match self.line(text.trim_end(), &mut let_in)? {
                        Some(end) => return Ok(end),
                        None => line.clear(),
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // What was read of a line stays in `line`.
                    if !let_in && Instant::now() > answered_by {
                        return Ok(End::Lost(
                            format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                            false,
                        ));
                    }
                }
                Err(e) => return Ok(End::Lost(format!("reading: {e}"), let_in)),
            }
            if line.len() > MAX_LINE {
                return Ok(End::Lost(
                    format!("a line longer than {MAX_LINE} bytes"),
                    let_in,
                ));
            }
            if reader.buffer().is_empty() {
                self.out.finish().context("writing the ticks")?;
                self.save(false)?;
            }
        }
    }

    /// One line from the recorder: `Some` when it ends the connection.
    fn line(&mut self, line: &str, let_in: &mut bool) -> anyhow::Result<Option<End>> {
        if line.starts_with("{\"seq\":") {
            let row = tickrec::format::jsonl::parse_row(line)
                .map_err(|e| anyhow::anyhow!("a tick line from the recorder: {e}: {line}"))?;
            let seq = row.seq.unwrap_or_default();
            let day = row.ts_event.day();
            match &mut self.cursor {
                Some(c) => c.advance(day, seq),
                None => self.cursor = Some(Cursor::at(day, seq)),
            }
            self.out.write_row(&row).context("writing the ticks")?;
            self.printed += 1;
            if self.max_ticks.is_some_and(|n| self.printed >= n) {
                return Ok(Some(End::Done));
            }
            return Ok(None);
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("a line from the recorder is not JSON: {e}: {line}"))?;
        let text = |key: &str| v.get(key).and_then(serde_json::Value::as_str);
        let cursor = |key: &str| -> anyhow::Result<Option<Cursor>> {
            text(key)
                .map(|c| {
                    c.parse::<Cursor>()
                        .map_err(|e| anyhow::anyhow!("the recorder's {key} {c:?}: {e}"))
                })
                .transpose()
        };
        match text("event") {
            Some("subscribed") => {
                *let_in = true;
                if self.cursor.is_none() {
                    self.cursor = cursor("cursor")?;
                }
                // Into --out, the cursor file accounts for the file before its first row.
                if self.out.to_file() && self.saved.is_none() {
                    self.save(true)?;
                }
                let kinds = [
                    ("unknown", "records"),
                    ("unknown_sources", "has the source"),
                ];
                for ((key, what), told) in kinds.into_iter().zip(&mut self.unknown_told) {
                    let unknown = v.get(key).and_then(serde_json::Value::as_array);
                    if let Some(unknown) = unknown.filter(|u| !u.is_empty() && !*told) {
                        *told = true;
                        eprintln!(
                            "subscribe: no session of the recorder {what} {}",
                            serde_json::Value::from(unknown.clone())
                        );
                    }
                }
            }
            // Every tick of its symbols up to there was sent before it: the cursor only moves
            // on, day by day.
            Some("replayed" | "heartbeat") => {
                if let Some(theirs) = cursor("cursor")? {
                    let mut mine = self.cursor.take().unwrap_or_else(|| theirs.clone());
                    for (day, seq) in theirs.days() {
                        mine.advance(day, seq);
                    }
                    self.cursor = Some(mine);
                }
            }
            Some("session") => eprintln!(
                "subscribe: session {} is {}",
                text("session").unwrap_or("?"),
                text("state").unwrap_or("?")
            ),
            Some("disconnected") => {
                return Ok(Some(End::Lost(
                    format!(
                        "the recorder ended the subscription: {}",
                        text("reason").unwrap_or("no reason given")
                    ),
                    *let_in,
                )))
            }
            // Refused for want of a place: tried again, as after a disconnection.
            Some("error") if v.get("retry") == Some(&serde_json::Value::Bool(true)) => {
                return Ok(Some(End::Lost(
                    format!(
                        "the recorder has no place free: {}",
                        text("reason").unwrap_or("no reason given")
                    ),
                    false,
                )))
            }
            Some("error") => anyhow::bail!(
                "the recorder refused the subscription: {}",
                text("reason").unwrap_or("no reason given")
            ),
            // The snapshot (rows without a seq) and its end, and lines of later versions.
            _ => {}
        }
        Ok(None)
    }

    /// Writes the cursor file when the cursor moved since it was last written: at once with
    /// `now`, else at most every [`SAVE_EVERY`]. The rows before it are flushed first.
    fn save(&mut self, now: bool) -> anyhow::Result<()> {
        let (Some(file), Some(cursor)) = (&self.cursor_file, &self.cursor) else {
            return Ok(());
        };
        if let Some((saved, at)) = &self.saved {
            if saved == cursor || (!now && at.elapsed() < SAVE_EVERY) {
                return Ok(());
            }
        }
        self.out.save(file, cursor)?;
        self.saved = Some((cursor.clone(), Instant::now()));
        Ok(())
    }
}

/// A connection to `addr` (each of its addresses in turn), reading with a short timeout.
fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(READ_WAKE))?;
                s.set_write_timeout(Some(CONNECT_TIMEOUT))?;
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")
    }))
}
