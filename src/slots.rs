//! Places for connections served at once (the live fan-out's subscribers, the status page's
//! event streams): taken when one is accepted, given back when its guard is dropped, so that a
//! flood of connections costs a refusal each, not a thread each. [`Waiting`] bounds the
//! connections not yet let in, in all and from one address, so that peers which never send a
//! request (or send one without the token) cannot take the places of those that do.
//! [`accept_loop`] is how both listeners (the subscribers' port and the metrics listener) hand
//! those places out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::shutdown::Shutdown;

/// How long the accepting thread waits for a connection before it looks at its stop again.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// Accepts `listener`'s connections until `stop`. Each takes a place of `waiting` and is
/// handed to `serve` on a thread of its own named `thread`, or, with no place for it, to
/// `refuse` with the reason (on this thread: it must not block). An accept that fails (the
/// process out of file descriptors, most often: the connection waits in the backlog) is logged
/// at most once a second and tried again 50 ms later, so the listener never ends but with
/// `stop`. `what` names the listener in the log.
pub fn accept_loop<S>(
    listener: &TcpListener,
    waiting: &Waiting,
    stop: &Shutdown,
    what: &str,
    thread: &str,
    refuse: impl Fn(TcpStream, SocketAddr, String),
    serve: S,
) where
    S: Fn(TcpStream, SocketAddr, WaitingSlot) + Send + Sync + 'static,
{
    let serve = Arc::new(serve);
    let faults = Throttle::default();
    while !stop.is_requested() {
        if !acceptable(listener, STOP_CHECK) {
            continue;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                let place = match waiting.take(peer.ip()) {
                    Ok(place) => place,
                    Err(why) => {
                        refuse(stream, peer, why);
                        continue;
                    }
                };
                let serve = Arc::clone(&serve);
                let spawned = std::thread::Builder::new()
                    .name(thread.into())
                    .spawn(move || serve(stream, peer, place));
                if let Err(e) = spawned {
                    if let Some(held_back) = faults.let_through() {
                        tracing::warn!(%peer, error = %e, held_back, "{what}: cannot serve a connection");
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                if let Some(held_back) = faults.let_through() {
                    tracing::error!(error = %e, held_back, "{what}: accept failed; trying again");
                }
                stop.wait_timeout(Duration::from_millis(50));
            }
        }
    }
}

/// Whether `listener` has a connection to accept within `timeout` (or an error to report).
fn acceptable(listener: &TcpListener, timeout: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: one live pollfd, and its count is 1.
    unsafe { libc::poll(&mut fd, 1, ms) > 0 }
}

/// At most `max` places, shared by every clone.
#[derive(Debug, Clone)]
pub struct Slots {
    taken: Arc<AtomicUsize>,
    max: usize,
}

/// One place of [`Slots`], given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Slots {
    /// `max` places (at least one).
    pub fn new(max: usize) -> Slots {
        Slots {
            taken: Arc::default(),
            max: max.max(1),
        }
    }

    /// How many places there are.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A place, if fewer than [`Slots::max`] are taken.
    pub fn take(&self) -> Option<Slot> {
        self.taken
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.taken.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Connections waiting, by address (addresses with none are removed).
type ByAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Places for connections that have not yet been let in: at most `max` in all, and at most
/// `per_address` from one address other than loopback (a host's own programs share one
/// address, and a local user is trusted with more than a place).
#[derive(Debug, Clone)]
pub struct Waiting {
    all: Slots,
    per_address: usize,
    by_address: ByAddress,
}

/// One place of [`Waiting`], given back when dropped.
#[derive(Debug)]
pub struct WaitingSlot {
    _all: Slot,
    address: Option<(IpAddr, ByAddress)>,
}

impl Waiting {
    /// `max` places in all (at least one), `per_address` (at least one) for each address.
    pub fn new(max: usize, per_address: usize) -> Waiting {
        Waiting {
            all: Slots::new(max),
            per_address: per_address.max(1),
            by_address: Arc::default(),
        }
    }

    /// A place for a connection from `peer`, or why there is none.
    pub fn take(&self, peer: IpAddr) -> Result<WaitingSlot, String> {
        let all = self.all.take().ok_or_else(|| {
            format!(
                "{} connections are waiting to send their request, the most this recorder holds",
                self.all.max()
            )
        })?;
        if peer.is_loopback() {
            return Ok(WaitingSlot {
                _all: all,
                address: None,
            });
        }
        let mut by_address = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        let n = by_address.entry(peer).or_default();
        if *n >= self.per_address {
            return Err(format!(
                "{} connections from {peer} are waiting to send their request, the most one \
                 address may hold",
                self.per_address
            ));
        }
        *n += 1;
        Ok(WaitingSlot {
            _all: all,
            address: Some((peer, self.by_address.clone())),
        })
    }
}

impl Drop for WaitingSlot {
    fn drop(&mut self) {
        if let Some((peer, by_address)) = &self.address {
            let mut by_address = by_address.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = by_address.get_mut(peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    by_address.remove(peer);
                }
            }
        }
    }
}

/// At most one event a second let through, with how many were held back since the last: the
/// log lines of refused peers, so that a flood costs a count each, not a line each.
#[derive(Debug, Default)]
pub struct Throttle(Mutex<(Option<Instant>, u64)>);

impl Throttle {
    /// `Some(held back since the last)` when a second has passed since the last let through.
    pub fn let_through(&self) -> Option<u64> {
        self.let_through_at(Instant::now())
    }

    fn let_through_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match state.0 {
            Some(last) if now.duration_since(last) < Duration::from_secs(1) => {
                state.1 = state.1.saturating_add(1);
                None
            }
            _ => {
                state.0 = Some(now);
                Some(std::mem::take(&mut state.1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_given_back_when_their_guards_drop() {
        let slots = Slots::new(2);
        let (a, b) = (slots.take(), slots.take());
        assert!(a.is_some() && b.is_some());
        assert!(slots.take().is_none());
        drop(a);
        assert!(slots.clone().take().is_some());
    }

    #[test]
    fn waiting_places_are_bounded_in_all_and_per_address_but_loopback() {
        let waiting = Waiting::new(4, 2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let a1 = waiting.take(a).unwrap();
        let _a2 = waiting.take(a).unwrap();
        let e = waiting.take(a).unwrap_err();
        assert!(e.contains("from 192.0.2.1"), "{e}");
        let _b1 = waiting.take(b).unwrap();
        drop(a1);
        let _a3 = waiting.take(a).unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let _l1 = waiting.take(local).unwrap();
        let e = waiting.take(local).unwrap_err();
        assert!(e.contains("4 connections are waiting"), "{e}");
        drop(_b1);
        assert!(
            waiting.take(local).is_ok(),
            "loopback is bounded only in all"
        );
        assert!(waiting.by_address.lock().unwrap().values().all(|&n| n > 0));
    }

    #[test]
    fn a_throttle_lets_one_through_a_second_and_counts_the_rest() {
        let throttle = Throttle::default();
        let start = Instant::now();
        assert_eq!(throttle.let_through_at(start), Some(0));
        for ms in [1, 500, 999] {
            assert_eq!(
                throttle.let_through_at(start + Duration::from_millis(ms)),
                None
            );
        }
        assert_eq!(
            throttle.let_through_at(start + Duration::from_secs(1)),
            Some(3)
        );
        assert_eq!(
            throttle.let_through_at(start + Duration::from_secs(3)),
            Some(0)
        );
    }
}
