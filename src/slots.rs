//! Places for connections served at once (the live fan-out's subscribers, the status page's
//! event streams): taken when one is accepted, given back when its guard is dropped, so that a
//! flood of connections costs a refusal each, not a thread each. [`Waiting`] bounds the
//! connections not yet let in, in all and from one address, closing the one that has waited
//! longest to make room, so that peers which never send a request (or send one without the
//! token) cannot take the places of those that do.
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
    let (faults, room_made) = (Throttle::default(), Throttle::default());
    while !stop.is_requested() {
        if !acceptable(listener, STOP_CHECK) {
            continue;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                let place = match waiting.take(peer.ip(), &stream) {
                    Ok((place, None)) => place,
                    Ok((place, Some(closed))) => {
                        if let Some(held_back) = room_made.let_through() {
                            tracing::warn!(
                                %closed,
                                %peer,
                                held_back,
                                "{what}: closed the connection that had waited longest without \
                                 a request, to make room"
                            );
                        }
                        place
                    }
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

/// Places for connections that wait for a request or are being served (a would-be
/// subscriber's until it is let in; a metrics listener's connection for as long as it lasts):
/// at most `max` in all, and at most `per_address` from one address other than loopback (a
/// host's own programs share one address, and a local user is trusted with more than a place).
///
/// With no place free, the connection that has waited longest without sending (from the same
/// address, when that address holds all of its own) is closed to make room: its socket is
/// shut down, so its thread's read ends at once and gives its place back. So a flood of
/// connections that send nothing cannot keep out a client that sends its request as soon as
/// it connects (a health probe, a scrape, a subscriber): the flood only cycles its own. A
/// connection marked [`WaitingSlot::busy`] (being answered) is never closed this way, nor one
/// taken when the process had no descriptor left for a second handle on it. Threads
/// of closed connections that have not yet ended count too, up to `max` more; past that a new
/// connection is refused.
#[derive(Debug, Clone)]
pub struct Waiting {
    max: usize,
    per_address: usize,
    state: Arc<Mutex<WaitingState>>,
}

#[derive(Debug, Default)]
struct WaitingState {
    /// Places handed out and not given back (closed connections' included).
    alive: usize,
    /// Connections holding a place, by id.
    held: HashMap<u64, Held>,
    /// Of those, how many from each address but loopback (addresses with none removed).
    by_address: HashMap<IpAddr, usize>,
    /// The next id, and the order in which connections started to wait.
    next: u64,
    /// Connections closed to make room.
    closed: u64,
}

#[derive(Debug)]
struct Held {
    peer: IpAddr,
    /// A handle on its socket, to shut it down (none when the process had no descriptor
    /// left for one).
    socket: Option<TcpStream>,
    /// Since when it waits (the order of `next`), or `None` while it is answered.
    waiting_since: Option<u64>,
}

/// One place of [`Waiting`], given back when dropped.
#[derive(Debug)]
pub struct WaitingSlot {
    id: u64,
    state: Arc<Mutex<WaitingState>>,
}

impl Waiting {
    /// `max` places in all (at least one), `per_address` (at least one) for each address.
    pub fn new(max: usize, per_address: usize) -> Waiting {
        Waiting {
            max: max.max(1),
            per_address: per_address.max(1),
            state: Arc::default(),
        }
    }

    /// A place for `socket`, a connection from `peer`, making room if need be (with the
    /// address of the connection closed for it); or why there is none.
    pub fn take(
        &self,
        peer: IpAddr,
        socket: &TcpStream,
    ) -> Result<(WaitingSlot, Option<IpAddr>), String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.alive >= self.max * 2 {
            return Err(format!(
                "{} connections are waiting to send their request, or closing, the most this \
                 recorder holds",
                st.alive
            ));
        }
        let local = peer.is_loopback();
        let full_here = !local
            && st
                .by_address
                .get(&peer)
                .is_some_and(|&n| n >= self.per_address);
        let mut closed = None;
        if full_here {
            closed = st.close_longest_waiting(|h| h.peer == peer);
            if closed.is_none() {
                return Err(format!(
                    "{} connections from {peer} are being served, the most one address may hold",
                    self.per_address
                ));
            }
        }
        if st.held.len() >= self.max {
            closed = st.close_longest_waiting(|_| true);
            if closed.is_none() {
                return Err(format!(
                    "{} connections are being served, the most this recorder holds",
                    self.max
                ));
            }
        }
        // Out of descriptors, it is served without one: it just cannot be closed for room.
        let socket = socket.try_clone().ok();
        let id = st.next;
        st.next += 1;
        st.held.insert(
            id,
            Held {
                peer,
                socket,
                waiting_since: Some(id),
            },
        );
        if !local {
            *st.by_address.entry(peer).or_default() += 1;
        }
        st.alive += 1;
        let slot = WaitingSlot {
            id,
            state: Arc::clone(&self.state),
        };
        Ok((slot, closed))
    }

    /// Connections closed to make room so far.
    pub fn closed_for_room(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed
    }
}

impl WaitingState {
    /// Shuts down the connection that has waited longest among those `which` picks, and takes
    /// it off the places: its address, or `None` when there is none (all being served).
    fn close_longest_waiting(&mut self, which: impl Fn(&Held) -> bool) -> Option<IpAddr> {
        let longest = self
            .held
            .iter()
            .filter(|(_, h)| h.socket.is_some() && which(h))
            .filter_map(|(id, h)| h.waiting_since.map(|since| (since, *id)))
            .min();
        let (_, id) = longest?;
        let h = self.forget(id)?;
        if let Some(socket) = &h.socket {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        self.closed += 1;
        Some(h.peer)
    }

    /// Takes connection `id` off the places.
    fn forget(&mut self, id: u64) -> Option<Held> {
        let h = self.held.remove(&id)?;
        if let Some(n) = self.by_address.get_mut(&h.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_address.remove(&h.peer);
            }
        }
        Some(h)
    }
}

impl WaitingSlot {
    /// Being answered: not to be closed to make room until [`WaitingSlot::waiting`].
    pub fn busy(&self) {
        self.set_waiting(false);
    }

    /// Waiting again (for its next request): the longest waiting is the first closed.
    pub fn waiting(&self) {
        self.set_waiting(true);
    }

    /// Whether it was closed to make room for another (its place taken back while held).
    pub fn closed_for_room(&self) -> bool {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        !st.held.contains_key(&self.id)
    }

    fn set_waiting(&self, waiting: bool) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let since = waiting.then_some(st.next);
        if let Some(h) = st.held.get_mut(&self.id) {
            h.waiting_since = since;
            st.next += 1;
        }
    }
}

impl Drop for WaitingSlot {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.forget(self.id);
        st.alive = st.alive.saturating_sub(1);
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

    /// A connection's two ends: the one a peer holds, and the one accepted.
    fn connection(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (peer, accepted)
    }

    /// Whether the peer's end has been closed (a read ends at once).
    fn closed(peer: &mut TcpStream) -> bool {
        peer.set_nonblocking(true).unwrap();
        let mut byte = [0u8];
        let r = std::io::Read::read(peer, &mut byte);
        peer.set_nonblocking(false).unwrap();
        matches!(r, Ok(0))
    }

    /// What could go wrong: a flood of connections that send nothing keeping out a client that
    /// sends its request at once; a connection being answered closed under it; a place never
    /// given back; or threads of closed connections piling up without a bound.
    #[test]
    fn the_longest_waiting_connection_makes_room_and_the_places_stay_bounded() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let waiting = Waiting::new(4, 2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let taken = std::cell::RefCell::new(Vec::new());
        let take = |from: IpAddr| {
            let (peer, accepted) = connection(&listener);
            let place = waiting.take(from, &accepted).map(|(slot, closed)| {
                taken.borrow_mut().push(closed);
                slot
            });
            (peer, place)
        };
        // An address holding its own places makes room among its own.
        let (mut a1, a1_slot) = take(a);
        let (_a2, a2_slot) = take(a);
        let a2_slot = a2_slot.unwrap();
        let (mut a3, a3_slot) = take(a);
        assert!(
            a3_slot.is_ok() && closed(&mut a1),
            "the longest waiting of 192.0.2.1 closed"
        );
        // One being answered is never closed for room.
        a2_slot.busy();
        let (_a4, a4_slot) = take(a);
        let a4_slot = a4_slot.unwrap();
        assert!(closed(&mut a3));
        a4_slot.busy();
        let (_, e) = take(a);
        let e = e.unwrap_err();
        assert!(e.contains("from 192.0.2.1 are being served"), "{e}");
        // In all: the longest waiting of any address (not loopback's own bound: there is none).
        let (mut b1, b1_slot) = take(b);
        let (mut l1, l1_slot) = take(local);
        let (_l2, l2_slot) = take(local);
        assert!(
            l2_slot.is_ok() && closed(&mut b1),
            "the longest waiting in all closed"
        );
        assert!(!closed(&mut l1));
        // A place closed for room knows it (its thread counts it as such, not as a refusal).
        let closed_flags: Vec<bool> = [&a1_slot, &a3_slot, &b1_slot, &l1_slot]
            .iter()
            .map(|s| s.as_ref().unwrap().closed_for_room())
            .collect();
        assert_eq!(closed_flags, [true, true, true, false]);
        // Closed connections whose threads have not ended count, up to as many again.
        let (_l3, l3_slot) = take(local);
        assert!(l3_slot.is_ok() && closed(&mut l1));
        let (_, e) = take(local);
        let e = e.unwrap_err();
        assert!(e.contains("or closing"), "{e}");
        drop((a1_slot, a3_slot, b1_slot, l1_slot));
        let (_l4, l4_slot) = take(local);
        assert!(l4_slot.is_ok(), "places of ended threads come back");
        assert_eq!(waiting.closed_for_room(), 5);
        // Each place taken says whose connection was closed for it.
        let closed_for: Vec<_> = taken.borrow().iter().flatten().copied().collect();
        assert_eq!(closed_for, [a, a, b, local, local]);
        // Waiting again, a connection is the newest in line.
        a2_slot.waiting();
        a4_slot.waiting();
        let st = waiting.state.lock().unwrap();
        assert!(st.by_address.values().all(|&n| n > 0));
        assert_eq!(st.held.len(), 4);
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
