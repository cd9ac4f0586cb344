//! Subscribers of the live fan-out for the bench: readers that take every byte and discard
//! it (in 64 KiB reads, as a consumer that parses elsewhere would: what they cost the shared
//! cores is the kernel's copy, not line splitting), and stalled ones that subscribe and never
//! read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tickrec::shutdown::Shutdown;

/// Conflation of the bench's screens (`--publish-screens`), ms: four times a second, as a
/// desk's monitoring screen asks.
pub const SCREEN_MS: u64 = 250;

/// The request line of each of `n` subscribers: every symbol (`["*"]`), or `each` of `names`
/// apiece, subscriber `i` from the `i * each`-th on (wrapping round), so that together they
/// spread over the symbols as strategies that each want a few do; conflated at
/// `conflate_ms` when given. The `screens` subscribers before the last one (the stalled one
/// when there is one) ask instead for every symbol conflated at [`SCREEN_MS`]: monitoring
/// screens beside the strategies.
pub fn requests(
    names: &[String],
    n: usize,
    each: Option<usize>,
    conflate_ms: Option<u64>,
    screens: usize,
) -> Vec<Vec<u8>> {
    let last = n.saturating_sub(1);
    let first_screen = last.saturating_sub(screens);
    (0..n)
        .map(|i| {
            let request = if (first_screen..last).contains(&i) {
                serde_json::json!({ "symbols": ["*"], "conflate_ms": SCREEN_MS })
            } else {
                let symbols: Vec<&str> = match each {
                    Some(k) if !names.is_empty() => {
                        let k = k.min(names.len());
                        (0..k)
                            .map(|j| names[(i * k + j) % names.len()].as_str())
                            .collect()
                    }
                    _ => vec!["*"],
                };
                let mut request = serde_json::json!({ "symbols": symbols });
                if let Some(ms) = conflate_ms {
                    request["conflate_ms"] = ms.into();
                }
                request
            };
            let mut line = request.to_string().into_bytes();
            line.push(b'\n');
            line
        })
        .collect()
}

/// Connects a subscriber for each of `requests` to `addr` (retrying until it listens), the
/// first `readers` reading and the rest never reading, each on a thread that ends with `stop`.
pub fn start(
    addr: &str,
    readers: usize,
    requests: &[Vec<u8>],
    stop: &Shutdown,
) -> Vec<std::thread::JoinHandle<()>> {
    requests
        .iter()
        .enumerate()
        .map(|(i, request)| {
            let (addr, stop, request) = (addr.to_owned(), stop.clone(), request.clone());
            let reads = i < readers;
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                let stream = loop {
                    match TcpStream::connect(&addr) {
                        Ok(s) => break s,
                        Err(_) if Instant::now() < deadline && !stop.is_requested() => {
                            stop.wait_timeout(Duration::from_millis(20));
                        }
                        Err(_) => return,
                    }
                };
                let mut w = match stream.try_clone() {
                    Ok(w) => w,
                    Err(_) => return,
                };
                if w.write_all(&request).is_err() {
                    return;
                }
                if !reads {
                    stop.wait_timeout(Duration::from_secs(3600));
                    return;
                }
                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                let mut r = stream;
                let mut buf = vec![0u8; 1 << 16];
                while !stop.is_requested() {
                    match r.read(&mut buf) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => return,
                    }
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::requests;

    #[test]
    fn subscribers_ask_for_every_symbol_or_each_for_its_own_run_of_them() {
        let names: Vec<String> = ["A", "B", "C", "D", "E"].map(String::from).to_vec();
        let lines = |each| -> Vec<String> {
            requests(&names, 3, each, None, 0)
                .into_iter()
                .map(|l| String::from_utf8(l).unwrap())
                .collect()
        };
        assert_eq!(lines(None), vec!["{\"symbols\":[\"*\"]}\n"; 3]);
        assert_eq!(
            String::from_utf8(requests(&names, 1, None, Some(100), 0).remove(0)).unwrap(),
            "{\"conflate_ms\":100,\"symbols\":[\"*\"]}\n"
        );
        assert_eq!(
            lines(Some(2)),
            [
                "{\"symbols\":[\"A\",\"B\"]}\n",
                "{\"symbols\":[\"C\",\"D\"]}\n",
                "{\"symbols\":[\"E\",\"A\"]}\n"
            ]
        );
        // Two screens before the last: every symbol, conflated.
        let with_screens: Vec<String> = requests(&names, 4, Some(2), None, 2)
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect();
        assert_eq!(with_screens[0], "{\"symbols\":[\"A\",\"B\"]}\n");
        assert_eq!(
            &with_screens[1..3],
            ["{\"conflate_ms\":250,\"symbols\":[\"*\"]}\n"; 2]
        );
        assert_eq!(with_screens[3], "{\"symbols\":[\"B\",\"C\"]}\n");
        // More than there are: each asks for every one once.
        assert_eq!(
            lines(Some(9))[1],
            "{\"symbols\":[\"A\",\"B\",\"C\",\"D\",\"E\"]}\n"
        );
    }
}
