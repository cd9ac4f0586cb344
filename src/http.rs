//! The HTTP/1.1 server behind the metrics listener (`/metrics`, `/health`, the status page):
//! one thread that accepts, and one per connection.
//!
//! What a connection costs is bounded. It holds a place of [`crate::slots::Waiting`]
//! ([`MAX_WAITING`] in all, [`MAX_WAITING_PER_ADDRESS`] from one address but loopback) from
//! when it is accepted, and waits for a request at most [`Limits::first_request`] before its
//! first and [`Limits::idle`] between two. With no place free, the connection that has waited
//! longest without sending is closed to make room (one being answered never is), so peers
//! that connect and send nothing cannot keep out a probe or a scrape that sends its request at
//! once; one that finds every place being answered is answered `503` with the reason and
//! closed at once. Both are counted, and logged at most once a second. A response that lasts
//! (the status page's event stream) gives its place up when it starts: whoever hands it out
//! bounds those ([`Response::stream`]). So a flood costs a closed connection each, not a
//! thread and a file descriptor each for as long as it likes, and the recorder keeps the
//! descriptors its day files need.
//!
//! An accept that fails (the process out of file descriptors, for instance) is logged at most
//! once a second and tried again 50 ms later: the listener ends only with its [`Server`]
//! ([`crate::slots::accept_loop`], shared with the subscribers' port).
//!
//! What it serves: `GET` and `HEAD` without a body, kept alive (HTTP/1.1's default; an
//! HTTP/1.0 request is answered and the connection closed), pipelined requests in turn.
//! Anything else is answered with its status (`400`, `405`, `408`, `413`, `431`) and closed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::shutdown::Shutdown;
use crate::slots::{Throttle, Waiting};

/// Connections held at once (waiting for a request or being answered), at most, in all.
pub const MAX_WAITING: usize = 64;
/// Connections from one address (loopback excepted) held at once, at most.
pub const MAX_WAITING_PER_ADDRESS: usize = 8;
/// A request head's size, at most (a scrape's or a browser's is well under 2 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Header lines of a request, at most.
const MAX_HEADERS: usize = 48;
/// How often a connection's read looks at whether the server is stopping.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// How long a connection may take or stay idle.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the connection to the end of its first request head.
    pub first_request: Duration,
    /// From the end of a response to the end of the next request head.
    pub idle: Duration,
    /// One write, at most, before the peer counts as gone.
    pub write: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            first_request: Duration::from_secs(10),
            idle: Duration::from_secs(30),
            write: Duration::from_secs(10),
        }
    }
}

/// `GET` or `HEAD`: the only methods handed to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

/// A request as the handler sees it.
#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// The path, without its query.
    pub path: String,
    /// The `Authorization` header's value, if it came as text.
    pub authorization: Option<String>,
    pub peer: SocketAddr,
}

/// What a connection is handed to, for a response that lasts.
pub type Streamer = Box<dyn FnOnce(&mut dyn Write) + Send>;

/// The handler's answer.
pub struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

enum Body {
    Bytes(Vec<u8>),
    Stream(Streamer),
}

impl Response {
    /// `status` with `body` of `content_type`.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: Body::Bytes(body.into()),
        }
    }

    /// A `200` of `content_type` whose body `write` makes as it goes, on the connection's own
    /// thread, until it returns; then the connection closes. The connection's waiting place
    /// is given up when it starts: what `write` holds is its bound.
    pub fn stream(content_type: &str, write: Streamer) -> Response {
        Response {
            status: 200,
            headers: vec![
                ("Content-Type", content_type.to_owned()),
                ("Cache-Control", "no-cache".to_owned()),
            ],
            body: Body::Stream(write),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// Answers each request.
pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A listening server; stops when dropped (its event streams with its [`Shutdown`]).
pub struct Server {
    addr: SocketAddr,
    stop: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http::Server({})", self.addr)
    }
}

/// What the accepting thread shares with the connections' threads.
struct Shared {
    handler: Arc<Handler>,
    limits: Limits,
    waiting: Waiting,
    stop: Shutdown,
    /// Connections refused for want of a place.
    refused: Arc<AtomicU64>,
    refusals_logged: Throttle,
    /// What the listener is, in its log lines.
    what: &'static str,
}

impl Server {
    /// Serves `listener` with `handler` until dropped or `stop`, each connection holding a
    /// place of `waiting` (`Waiting::new(MAX_WAITING, MAX_WAITING_PER_ADDRESS)` for the
    /// metrics listener) for as long as it lasts (a stream gives it up when it starts);
    /// counts the connections it refuses in `refused`. `what` names the listener in the log.
    pub fn start(
        listener: TcpListener,
        what: &'static str,
        limits: Limits,
        waiting: Waiting,
        handler: Arc<Handler>,
        stop: Shutdown,
        refused: Arc<AtomicU64>,
    ) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared {
            handler,
            limits,
            waiting,
            stop: stop.clone(),
            refused,
            refusals_logged: Throttle::default(),
            what,
        });
        let thread = std::thread::Builder::new()
            .name("tickrec-http".into())
            .spawn(move || {
                let waiting = shared.waiting.clone();
                let (stop, what) = (shared.stop.clone(), shared.what);
                let refuse = {
                    let shared = Arc::clone(&shared);
                    move |stream, peer, why: String| shared.refuse(stream, peer, &why)
                };
                crate::slots::accept_loop(
                    &listener,
                    &waiting,
                    &stop,
                    what,
                    "tickrec-http-conn",
                    refuse,
                    move |stream, peer, place| connection(stream, peer, place, &shared),
                );
            })?;
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.request();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn refuse(&self, stream: TcpStream, peer: SocketAddr, why: &str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(held_back) = self.refusals_logged.let_through() {
            tracing::warn!(%peer, held_back, "{}: connection refused: {why}", self.what);
        }
        // Never held up by the peer: what does not fit its socket now is not sent.
        let _ = stream.set_nonblocking(true);
        let response = Response::new(503, "text/plain; charset=utf-8", format!("{why}\n"))
            .with_header("Retry-After", "1");
        let _ = write_response(&mut &stream, response, false, false);
        close_after_reading(stream);
    }
}

/// Why a request is not served (answered with the status and the reason, then closed).
struct Refusal(u16, &'static str);

/// One request head, parsed.
struct Head {
    method: String,
    path: String,
    /// HTTP/1.1 (else 1.0).
    http11: bool,
    authorization: Option<String>,
    /// `Connection: close` asked.
    close: bool,
    /// A body follows (`Content-Length` above 0, or `Transfer-Encoding`).
    body: bool,
}

fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    place: crate::slots::WaitingSlot,
    sh: &Shared,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(sh.limits.write));
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    let mut deadline = Instant::now() + sh.limits.first_request;
    loop {
        let read = read_head(&mut stream, &mut buf, deadline, &sh.stop);
        let (head, method) = match read.and_then(|head| head.map(served).transpose()) {
            Ok(Some(head)) => {
                place.busy();
                head
            }
            Ok(None) => return,
            Err(Refusal(status, why)) => {
                let mut r = Response::new(status, "text/plain; charset=utf-8", format!("{why}\n"));
                if status == 405 {
                    r = r.with_header("Allow", "GET, HEAD");
                }
                let _ = write_response(&mut stream, r, false, false);
                close_after_reading(stream);
                return;
            }
        };
        let keep_alive = head.http11 && !head.close;
        let request = Request {
            method,
            path: head.path,
            authorization: head.authorization,
            peer,
        };
        let response = (sh.handler)(&request);
        if let Body::Stream(_) = response.body {
            // Bounded by what the streamer holds from here on.
            drop(place);
            let head_only = method == Method::Head;
            let mut w = std::io::BufWriter::new(&stream);
            if let Ok(Some(streamer)) = write_response(&mut w, response, false, head_only) {
                streamer(&mut w);
            }
            return;
        }
        match write_response(&mut stream, response, keep_alive, method == Method::Head) {
            Ok(_) if keep_alive => {
                place.waiting();
                deadline = Instant::now() + sh.limits.idle;
            }
            Ok(_) => {
                close_after_reading(stream);
                return;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "{}: client went away", sh.what);
                return;
            }
        }
    }
}

/// `head` with its method, if this server serves it.
fn served(head: Head) -> Result<(Head, Method), Refusal> {
    let method = match head.method.as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => {
            return Err(Refusal(
                405,
                "method not allowed: this listener answers GET and HEAD",
            ))
        }
    };
    if head.body {
        return Err(Refusal(
            413,
            "a request with a body: this listener reads none",
        ));
    }
    Ok((head, method))
}

/// Reads until `buf` holds a whole request head, and takes it out of `buf` (what follows it,
/// a pipelined request, stays). `None`: the peer closed, went quiet past `deadline`, or the
/// server is stopping.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    stop: &Shutdown,
) -> Result<Option<Head>, Refusal> {
    let mut chunk = [0u8; 4096];
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = head_of(&req)?;
                    buf.drain(..len);
                    return Ok(Some(head));
                }
                Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
                    return Err(Refusal(431, "request head too large"));
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(Refusal(431, "too many header lines"));
                }
                Err(_) => return Err(Refusal(400, "not an HTTP/1.x request")),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(Refusal(408, "the request head did not come in time"))
            };
        }
        if stop.is_requested() {
            return Ok(None);
        }
        let _ = stream.set_read_timeout(Some(left.min(STOP_CHECK)));
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Ok(None),
        }
    }
}

fn head_of(req: &httparse::Request<'_, '_>) -> Result<Head, Refusal> {
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(Refusal(400, "an incomplete request line"));
    };
    let mut head = Head {
        method: method.to_owned(),
        path: target.split('?').next().unwrap_or("").to_owned(),
        http11: version >= 1,
        authorization: None,
        close: false,
        body: false,
    };
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).ok().map(str::trim);
        if h.name.eq_ignore_ascii_case("authorization") {
            head.authorization = value.map(str::to_owned);
        } else if h.name.eq_ignore_ascii_case("connection") {
            head.close |= value.is_some_and(|v| {
                v.split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("close"))
            });
        } else if h.name.eq_ignore_ascii_case("content-length") {
            head.body |= value != Some("0");
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.body = true;
        }
    }
    Ok(head)
}

/// Writes `response`'s head, and its body unless `head_only`; a stream's body is handed back.
fn write_response(
    w: &mut impl Write,
    response: Response,
    keep_alive: bool,
    head_only: bool,
) -> std::io::Result<Option<Streamer>> {
    let mut out = Vec::with_capacity(256);
    let date = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT");
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nDate: {date}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let streamer = match response.body {
        Body::Bytes(body) => {
            let connection = if keep_alive { "keep-alive" } else { "close" };
            let _ = write!(
                out,
                "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
                body.len()
            );
            if !head_only {
                out.extend_from_slice(&body);
            }
            None
        }
        Body::Stream(streamer) => {
            out.extend_from_slice(b"Connection: close\r\n\r\n");
            (!head_only).then_some(streamer)
        }
    };
    w.write_all(&out)?;
    w.flush()?;
    Ok(streamer)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Ends the connection after its last response: the sending half first, then what the peer
/// already sent is read (one read, 100 ms at most), so that the close is an orderly end where
/// it can be and not a reset that could throw the response away.
fn close_after_reading(stream: TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = (&stream).read(&mut [0u8; 4096]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    fn server(limits: Limits) -> (Server, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let handler: Arc<Handler> = Arc::new(|req: &Request| match req.path.as_str() {
            "/stream" => Response::stream(
                "text/event-stream",
                Box::new(|w: &mut dyn Write| {
                    for i in 0..3 {
                        let _ = write!(w, "data: {i}\n\n");
                        let _ = w.flush();
                    }
                }),
            ),
            path => Response::new(200, "text/plain", format!("{path}\n")),
        });
        let refused = Arc::new(AtomicU64::new(0));
        let s = Server::start(
            listener,
            "test listener",
            limits,
            Waiting::new(MAX_WAITING, MAX_WAITING_PER_ADDRESS),
            handler,
            Shutdown::new(),
            refused.clone(),
        )
        .unwrap();
        (s, refused)
    }

    /// Reads one response's head: its status line and its headers.
    fn head(r: &mut impl BufRead) -> (String, Vec<String>) {
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            headers.push(line.trim_end().to_owned());
        }
        (status.trim_end().to_owned(), headers)
    }

    /// Reads one response: its head, then its body of Content-Length bytes (`None` when there
    /// is no such header).
    fn response(r: &mut impl BufRead) -> (String, Vec<String>, Option<String>) {
        let (status, headers) = head(r);
        let len = headers
            .iter()
            .find_map(|h| h.strip_prefix("Content-Length: "))
            .map(|n| n.parse::<usize>().unwrap());
        let body = len.map(|n| {
            let mut b = vec![0; n];
            r.read_exact(&mut b).unwrap();
            String::from_utf8(b).unwrap()
        });
        (status, headers, body)
    }

    fn connect(s: &Server) -> (TcpStream, std::io::BufReader<TcpStream>) {
        let c = TcpStream::connect(s.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let r = std::io::BufReader::new(c.try_clone().unwrap());
        (c, r)
    }

    #[test]
    fn requests_are_answered_in_turn_on_a_kept_alive_connection() {
        let (s, _) = server(Limits::default());
        let (mut c, mut r) = connect(&s);
        // Two pipelined requests in one write, the second split across a later one.
        c.write_all(b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\nGET /b HT")
            .unwrap();
        let (status, headers, body) = response(&mut r);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            headers.contains(&"Connection: keep-alive".to_owned()),
            "{headers:?}"
        );
        assert!(
            headers.iter().any(|h| h.starts_with("Date: ")),
            "{headers:?}"
        );
        assert_eq!(body.as_deref(), Some("/a\n"));
        c.write_all(b"TP/1.1\r\n\r\nHEAD /c HTTP/1.1\r\n\r\n")
            .unwrap();
        assert_eq!(response(&mut r).2.as_deref(), Some("/b\n"));
        // HEAD: the length of what GET would send, and no body.
        let (_, headers) = head(&mut r);
        assert!(
            headers.contains(&"Content-Length: 3".to_owned()),
            "{headers:?}"
        );
        c.write_all(b"GET /d HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (_, headers, body) = response(&mut r);
        assert!(
            headers.contains(&"Connection: close".to_owned()),
            "{headers:?}"
        );
        assert_eq!(body.as_deref(), Some("/d\n"), "HEAD sent a body before it");
        let mut end = Vec::new();
        r.read_to_end(&mut end).unwrap();
        assert!(
            end.is_empty(),
            "the connection stays open after Connection: close"
        );
    }

    #[test]
    fn what_is_not_served_is_answered_with_its_status_and_closed() {
        let (s, _) = server(Limits::default());
        let cases: [(&[u8], &str); 5] = [
            (b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", "405"),
            (b"GET /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", "413"),
            (
                b"GET /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "413",
            ),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "400"),
            (b"GET /a HTTP/1.0\r\n\r\n", "200"),
        ];
        for (request, code) in cases {
            let (mut c, mut r) = connect(&s);
            c.write_all(request).unwrap();
            let (status, _, _) = response(&mut r);
            assert!(status.starts_with(&format!("HTTP/1.1 {code} ")), "{status}");
            let mut end = Vec::new();
            r.read_to_end(&mut end).unwrap();
            assert!(end.is_empty(), "{status}: not closed");
        }
        let (mut c, mut r) = connect(&s);
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        while big.len() < MAX_HEAD_BYTES + 100 {
            big.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        let _ = c.write_all(&big);
        assert!(response(&mut r).0.starts_with("HTTP/1.1 431 "));
    }

    #[test]
    fn a_stream_gives_its_place_up_and_closes_when_it_ends() {
        let (s, _) = server(Limits::default());
        let (mut c, mut r) = connect(&s);
        c.write_all(b"GET /stream HTTP/1.1\r\n\r\n").unwrap();
        let (status, headers, body) = response(&mut r);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(headers.contains(&"Content-Type: text/event-stream".to_owned()));
        assert_eq!(body, None, "a stream has no length");
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
    }

    /// What could go wrong: connections that send nothing keeping out a client that sends its
    /// request at once (a health probe), or holding a thread and a descriptor each for as long
    /// as they like, until the process has none left for its day files.
    #[test]
    fn silent_connections_make_room_for_a_request_and_are_closed_when_their_time_is_up() {
        // Places all taken by connections that send nothing, for longer than the test lasts.
        let patient = Limits {
            first_request: Duration::from_secs(60),
            ..Limits::default()
        };
        let (s, refused) = server(patient);
        let mut silent: Vec<TcpStream> = (0..MAX_WAITING)
            .map(|_| TcpStream::connect(s.addr()).unwrap())
            .collect();
        // One that sends its request at once is answered (the accepting thread takes
        // connections in turn: the silent ones have their places first), and the longest
        // waiting made room for it.
        let (mut c, mut r) = connect(&s);
        c.write_all(b"GET /probe HTTP/1.1\r\n\r\n").unwrap();
        let (status, _, body) = response(&mut r);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(body.as_deref(), Some("/probe\n"));
        silent[0]
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut end = Vec::new();
        silent[0].read_to_end(&mut end).unwrap();
        assert!(end.is_empty());
        assert_eq!(refused.load(Ordering::Relaxed), 0);
        // The others still wait (nothing to read yet).
        silent[1].set_nonblocking(true).unwrap();
        let e = silent[1].read(&mut [0u8; 1]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        drop(silent);
        drop(s);

        // Past their time, connections that send nothing are closed, and so is a kept-alive
        // one that stays quiet.
        let brief = Limits {
            first_request: Duration::from_millis(500),
            idle: Duration::from_millis(500),
            write: Duration::from_secs(5),
        };
        let (s, _) = server(brief);
        for mut quiet in (0..3).map(|_| TcpStream::connect(s.addr()).unwrap()) {
            quiet
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut end = Vec::new();
            quiet.read_to_end(&mut end).unwrap();
            assert!(end.is_empty());
        }
        let (mut c, mut r) = connect(&s);
        c.write_all(b"GET /a HTTP/1.1\r\n\r\n").unwrap();
        response(&mut r);
        let mut end = Vec::new();
        r.read_to_end(&mut end).unwrap();
        assert!(end.is_empty());
    }

    #[test]
    fn a_dropped_server_stops_listening() {
        let (s, _) = server(Limits::default());
        let addr = s.addr();
        drop(s);
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    }
}
