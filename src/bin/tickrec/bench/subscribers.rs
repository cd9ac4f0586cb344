//! Subscribers of the live fan-out for the bench: readers that take every byte and discard
//! it (in 64 KiB reads, as a consumer that parses elsewhere would: what they cost the shared
//! cores is the kernel's copy, not line splitting), and stalled ones that subscribe and never
//! read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tickrec::shutdown::Shutdown;

/// Connects `readers` reading and `stalled` never-reading subscribers to `addr` (retrying
/// until it listens), each on a thread that ends with `stop`.
pub fn start(
    addr: &str,
    readers: usize,
    stalled: usize,
    stop: &Shutdown,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..readers + stalled)
        .map(|i| {
            let (addr, stop) = (addr.to_owned(), stop.clone());
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
                if w.write_all(b"{\"symbols\": [\"*\"]}\n").is_err() {
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
