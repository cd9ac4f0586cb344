//! The FIX session layer, for both sides, without I/O.
//!
//! A [`Session`] is fed decoded headers of inbound messages and the passing of time; it queues
//! the bytes to send in [`Session::take_output`] and tells the caller which inbound messages are
//! new application messages to process. Rules it enforces:
//! * the first message is a Logon; CompIDs must match the session's;
//! * inbound MsgSeqNum: equal to expected → processed; higher → gap: one ResendRequest from the
//!   expected number to infinity, and messages past the gap are dropped until the resend fills
//!   it (they are resent too); lower with PossDupFlag=Y → duplicate, ignored; lower without it
//!   → fatal (Logout, disconnect);
//! * SequenceReset: GapFill moves the expected number forward in sequence, Reset moves it
//!   unconditionally (never backwards);
//! * ResendRequest: stored application messages are resent with PossDupFlag=Y and their
//!   OrigSendingTime; everything else is gap-filled;
//! * Heartbeat every HeartBtInt of silence; a TestRequest after HeartBtInt × 1.2 without input;
//!   disconnect when that goes unanswered for another HeartBtInt.

use std::collections::VecDeque;

use super::decode::{parse_u64, HeaderView};
use super::dictionary::{self, Violation};
use super::encode::{Header, MessageBuilder};
use super::frame::Fields;
use super::tags;
use crate::tick::Timestamp;

/// Which end of the connection this session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Acceptor,
}

/// Static session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub sender_comp_id: String,
    /// For an acceptor, empty means "whoever logs on".
    pub target_comp_id: String,
    pub heartbeat_secs: u32,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Send 141=Y on Logon: both sides restart at 1 (gives up resend of earlier messages).
    pub reset_on_logon: bool,
    /// Largest distance between a message's SendingTime and the receive clock; past it the
    /// message is rejected (373=10) and the session logged out, as FIX prescribes. `None`: off.
    pub sending_time_tolerance: Option<std::time::Duration>,
    /// Precision of the timestamps this side writes (default milliseconds, FIX 4.4's finest).
    pub time_precision: super::encode::TimePrecision,
    /// How much of an inbound message is checked against the FIX 4.4 dictionary.
    pub validation: Validation,
}

/// How much of an inbound message is checked against the FIX 4.4 data dictionary (see
/// `fix::dictionary`); a message that fails is answered with a Reject (35=3) naming FIX's
/// reason (373) and the tag (371), and is not processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validation {
    /// Every message, every field: what a venue certifies.
    Full,
    /// Session messages in full; application messages are the application's to check (the
    /// market-data decoder checks what makes a tick; a feed's custom tags never cost a quote,
    /// and quotes pay no dictionary walk: it cost 10% of end-to-end CPU measured).
    #[default]
    Session,
}

impl SessionConfig {
    /// `sender` → `target` with a 30 s heartbeat, no credentials, sequence numbers kept
    /// across connections, [`Validation::Session`]. An acceptor may leave `target` empty to take whoever logs on.
    pub fn new(sender: &str, target: &str) -> SessionConfig {
        SessionConfig {
            sender_comp_id: sender.into(),
            target_comp_id: target.into(),
            heartbeat_secs: 30,
            username: None,
            password: None,
            reset_on_logon: false,
            sending_time_tolerance: Some(std::time::Duration::from_secs(120)),
            time_precision: super::encode::TimePrecision::Millis,
            validation: Validation::Session,
        }
    }
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected, no Logon exchanged yet (the initiator has sent its own).
    AwaitingLogon,
    Active,
    /// We sent Logout and wait for the answer.
    LoggingOut,
    /// The connection must be closed.
    Closed,
}

/// What the caller should do with an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// A new application message, in sequence: process it.
    Deliver,
    /// Handled by the session (admin) or not to be processed (duplicate, past a gap).
    Consumed,
    /// The Logon exchange completed.
    LoggedOn,
}

/// The session ended; close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session closed: {0}")]
pub struct Disconnect(pub String);

/// One application message as sent, for resend.
#[derive(Debug, Clone)]
struct Stored {
    msg_type: String,
    sent_at: Timestamp,
    /// The application fields, encoded (`tag=value␁…`).
    body: Vec<u8>,
}

/// Where one kept message lies in [`ResendStore`]'s bytes.
#[derive(Debug, Clone, Copy)]
struct Kept {
    seq: u64,
    sent_at: Timestamp,
    /// Offset of its type in the store's byte stream (counted from the first byte ever kept).
    start: u64,
    type_len: u32,
    body_len: u32,
}

/// Application messages kept for resend, oldest first, by increasing sequence number. Admin
/// messages between them leave holes that a resend gap-fills.
///
/// Their types and fields lie back to back in one byte ring, beside a ring of fixed-size
/// entries: a message kept writes on where the last one ended. One buffer per message, reused
/// from the message it evicts, was 12 % of the simulator's time in `bench` (a cold heap block
/// and a cold 64-byte slot per message at its 2M messages).
#[derive(Debug, Default)]
pub struct ResendStore {
    kept: VecDeque<Kept>,
    bytes: VecDeque<u8>,
    /// Offset of `bytes[0]` in the byte stream.
    base: u64,
    capacity: usize,
}

impl ResendStore {
    /// Keeps the last `capacity` application messages; older ones are gap-filled on resend.
    pub fn new(capacity: usize) -> ResendStore {
        ResendStore {
            capacity,
            ..ResendStore::default()
        }
    }

    fn push(&mut self, seq: u64, msg_type: &str, at: Timestamp, body: &[u8]) {
        if self.capacity == 0 {
            return;
        }
        if self.kept.back().is_some_and(|m| m.seq >= seq) {
            // A sequence reset: earlier messages can no longer be asked for.
            self.clear();
        }
        let (Ok(type_len), Ok(body_len)) =
            (u32::try_from(msg_type.len()), u32::try_from(body.len()))
        else {
            return; // Not kept: a resend gap-fills it.
        };
        if self.kept.len() >= self.capacity {
            if let Some(old) = self.kept.pop_front() {
                let n = old.type_len as usize + old.body_len as usize;
                self.bytes.drain(..n.min(self.bytes.len()));
                self.base += n as u64;
            }
        }
        let start = self.base + self.bytes.len() as u64;
        self.bytes.extend(msg_type.as_bytes());
        self.bytes.extend(body);
        self.kept.push_back(Kept {
            seq,
            sent_at: at,
            start,
            type_len,
            body_len,
        });
    }

    fn find(&self, seq: u64) -> Option<&Kept> {
        let i = self.kept.binary_search_by_key(&seq, |m| m.seq).ok()?;
        self.kept.get(i)
    }

    fn get(&self, seq: u64) -> Option<Stored> {
        let k = self.find(seq)?;
        let at = usize::try_from(k.start.checked_sub(self.base)?).ok()?;
        let mid = at + k.type_len as usize;
        let end = mid + k.body_len as usize;
        Some(Stored {
            msg_type: String::from_utf8_lossy(
                &self.bytes.range(at..mid).copied().collect::<Vec<u8>>(),
            )
            .into_owned(),
            sent_at: k.sent_at,
            body: self.bytes.range(mid..end).copied().collect(),
        })
    }

    fn clear(&mut self) {
        self.base += self.bytes.len() as u64;
        self.kept.clear();
        self.bytes.clear();
    }
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionCounters {
    pub messages_in: u64,
    pub messages_out: u64,
    pub resend_requests_sent: u64,
    pub resend_requests_served: u64,
    pub duplicates_ignored: u64,
    pub rejects_received: u64,
    /// Session-level Rejects (35=3) this side sent.
    pub rejects_sent: u64,
    pub test_requests_sent: u64,
}

/// `8=FIX.4.4␁`: every message of a session starts with it.
const BEGIN_STRING_FIELD: &[u8] = b"8=FIX.4.4\x01";

/// Whether `t` is a MsgType FIX 4.4 defines: 0-9, A-Z but I, O and U, a-z, AA-AZ, BA-BH.
pub fn is_fix44_msg_type(t: &[u8]) -> bool {
    match t {
        [c] => {
            c.is_ascii_digit()
                || c.is_ascii_lowercase()
                || (c.is_ascii_uppercase() && !matches!(c, b'I' | b'O' | b'U'))
        }
        [b'A', c] => c.is_ascii_uppercase(),
        [b'B', c] => (b'A'..=b'H').contains(c),
        _ => false,
    }
}

/// Most messages kept past a gap; beyond, they are left to the resend (bounded memory).
const MAX_QUEUED: usize = 100_000;

/// One FIX session (see the module doc).
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    role: Role,
    state: State,
    next_out: u64,
    next_in: u64,
    last_sent: Timestamp,
    last_recv: Timestamp,
    state_since: Timestamp,
    test_request_sent: Option<Timestamp>,
    /// While filling a gap: the sequence number that revealed it.
    resend_until: Option<u64>,
    /// Messages received past a gap, by MsgSeqNum: processed in order once the gap is filled
    /// (see [`Session::next_queued`]), as FIX prescribes.
    queued: std::collections::BTreeMap<u64, Vec<u8>>,
    builder: MessageBuilder,
    out: Vec<u8>,
    store: ResendStore,
    pub counters: SessionCounters,
    logout_text: Option<String>,
}

/// How long a Logon or Logout exchange may take.
const HANDSHAKE_TIMEOUT_NS: i64 = 10_000_000_000;

impl Session {
    /// A session whose sequence numbers continue from `next_out`/`next_in` (1 and 1 when new).
    pub fn new(
        cfg: SessionConfig,
        role: Role,
        next_out: u64,
        next_in: u64,
        store: ResendStore,
    ) -> Session {
        let precision = cfg.time_precision;
        Session {
            cfg,
            role,
            state: State::Closed,
            next_out: next_out.max(1),
            next_in: next_in.max(1),
            last_sent: Timestamp(0),
            last_recv: Timestamp(0),
            state_since: Timestamp(0),
            test_request_sent: None,
            resend_until: None,
            queued: std::collections::BTreeMap::new(),
            builder: MessageBuilder::new().with_precision(precision),
            out: Vec::with_capacity(1 << 16),
            store,
            counters: SessionCounters::default(),
            logout_text: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn next_out(&self) -> u64 {
        self.next_out
    }

    pub fn next_in(&self) -> u64 {
        self.next_in
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// True while a gap is being filled by the counterparty's resend.
    pub fn resending(&self) -> bool {
        self.resend_until.is_some()
    }

    /// Why the counterparty logged out, if it did.
    pub fn logout_text(&self) -> Option<&str> {
        self.logout_text.as_deref()
    }

    /// Bytes queued for sending; the caller writes all of them.
    pub fn take_output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// A new connection is up. The initiator sends its Logon.
    pub fn on_connect(&mut self, now: Timestamp) {
        self.state = State::AwaitingLogon;
        self.state_since = now;
        self.last_recv = now;
        self.test_request_sent = None;
        self.resend_until = None;
        self.queued.clear();
        if self.role == Role::Initiator {
            if self.cfg.reset_on_logon {
                self.next_out = 1;
                self.next_in = 1;
            }
            self.send_logon(now);
        }
    }

    /// The connection is gone (closed by either side).
    pub fn on_disconnect(&mut self) {
        self.state = State::Closed;
        self.queued.clear();
    }

    /// The next message received past a gap that is now in sequence, to be handled like a
    /// newly received one (call after each message until it returns `None`).
    pub fn next_queued(&mut self) -> Option<Vec<u8>> {
        while let Some((&seq, _)) = self.queued.first_key_value() {
            if seq < self.next_in {
                // Filled meanwhile (by a resend or a gap fill): nothing left to do with it.
                self.queued.pop_first();
                continue;
            }
            if seq == self.next_in {
                return self.queued.pop_first().map(|(_, m)| m);
            }
            return None;
        }
        None
    }

    fn send_logon(&mut self, now: Timestamp) {
        let hb = self.cfg.heartbeat_secs;
        let reset = self.cfg.reset_on_logon;
        let (user, pass) = (self.cfg.username.clone(), self.cfg.password.clone());
        self.send_admin("A", now, |b| {
            b.field_u64(tags::ENCRYPT_METHOD, 0)
                .field_u64(tags::HEART_BT_INT, u64::from(hb));
            if reset {
                b.field_str(tags::RESET_SEQ_NUM_FLAG, "Y");
            }
            if let Some(u) = &user {
                b.field_str(tags::USERNAME, u);
            }
            if let Some(p) = &pass {
                b.field_str(tags::PASSWORD, p);
            }
        });
    }

    /// Starts a clean logout.
    pub fn logout(&mut self, text: &str, now: Timestamp) {
        if matches!(self.state, State::Active | State::AwaitingLogon) {
            self.send_admin("5", now, |b| {
                if !text.is_empty() {
                    b.field_str(tags::TEXT, text);
                }
            });
            self.state = State::LoggingOut;
            self.state_since = now;
        }
    }

    /// Sends an application message; `body` adds its fields. Kept for resend when the session
    /// has a store. Returns the sequence number used.
    pub fn send_app(
        &mut self,
        msg_type: &str,
        now: Timestamp,
        body: impl FnOnce(&mut MessageBuilder),
    ) -> u64 {
        let seq = self.next_out;
        self.encode(msg_type, seq, now, None, body);
        let body_bytes = self.builder.body_fields();
        self.store.push(seq, msg_type, now, body_bytes);
        seq
    }

    fn send_admin(
        &mut self,
        msg_type: &str,
        now: Timestamp,
        body: impl FnOnce(&mut MessageBuilder),
    ) {
        let seq = self.next_out;
        self.encode(msg_type, seq, now, None, body);
    }

    fn encode(
        &mut self,
        msg_type: &str,
        seq: u64,
        now: Timestamp,
        poss_dup: Option<Timestamp>,
        body: impl FnOnce(&mut MessageBuilder),
    ) {
        self.builder.start(&Header {
            msg_type,
            sender: &self.cfg.sender_comp_id,
            target: &self.cfg.target_comp_id,
            seq,
            sending_time: now,
            poss_dup,
        });
        body(&mut self.builder);
        self.builder.finish_into(&mut self.out);
        if poss_dup.is_none() || seq >= self.next_out {
            self.next_out = seq + 1;
        }
        self.last_sent = now;
        self.counters.messages_out += 1;
    }

    /// Handles one inbound message (already framed and decoded).
    pub fn on_message(
        &mut self,
        h: &HeaderView<'_>,
        raw: &[u8],
        now: Timestamp,
    ) -> Result<Inbound, Disconnect> {
        self.last_recv = now;
        self.test_request_sent = None;
        self.counters.messages_in += 1;
        let msg_type = h.msg_type;
        if !raw.starts_with(BEGIN_STRING_FIELD) {
            // FIX: a Logon is refused by disconnecting; in a session, Logout and disconnect.
            if self.state == State::Active {
                self.send_admin("5", now, |b| {
                    b.field_str(tags::TEXT, "Incorrect BeginString");
                });
            }
            return Err(self.close("Incorrect BeginString"));
        }
        if self.state == State::AwaitingLogon && msg_type != b"A" {
            return Err(self.close("first message was not a Logon"));
        }
        let checked = match self.cfg.validation {
            Validation::Full => true,
            Validation::Session => is_session_msg_type(msg_type),
        };
        if checked {
            if let Err(v) = dictionary::fix44().validate(raw) {
                return self.on_invalid(h, raw, v, now);
            }
        }
        if !self.sending_time_ok(h, now) {
            // FIX: a Logon with a bad SendingTime is refused by disconnecting; any other
            // message is rejected (373=10) and the session logged out. Its number is used up.
            if msg_type == b"A" {
                return Err(self.close("Logon SendingTime missing or out of range"));
            }
            if h.seq == self.next_in {
                self.next_in += 1;
            }
            tracing::warn!(seq = h.seq, sending_time = ?h.sending_time, %now,
                "SendingTime accuracy problem: rejecting the message and logging out");
            self.send_reject(raw, h.msg_type, 10, None, now);
            self.logout("SendingTime accuracy problem", now);
            return Ok(Inbound::Consumed);
        }
        if msg_type == b"A" {
            return self.on_logon(h, raw, now);
        }
        if !self.comp_ids_match(h) {
            // FIX: Reject (373=9) and Logout; the message's number is used up.
            if h.seq == self.next_in {
                self.next_in += 1;
            }
            self.send_reject(raw, h.msg_type, 9, None, now);
            self.logout("", now);
            return Ok(Inbound::Consumed);
        }
        if msg_type == b"4" {
            return self.on_sequence_reset(h, raw, now);
        }
        if msg_type == b"2" {
            return self.on_resend_request_any_seq(h, now, raw);
        }
        if h.seq > self.next_in {
            return self.on_gap(h, raw, now);
        }
        if h.seq < self.next_in {
            return self.too_low(h, raw, now);
        }
        if h.poss_dup && !self.poss_dup_ok(h, raw, now) {
            return Ok(Inbound::Consumed);
        }
        self.next_in += 1;
        if self.resend_until.is_some_and(|until| self.next_in >= until) {
            self.resend_until = None;
        }
        self.on_in_sequence(msg_type, raw, now)
    }

    /// A MsgSeqNum below the expected one: a duplicate when PossDupFlag=Y, else fatal (Logout
    /// saying so, then disconnect), as FIX prescribes.
    fn too_low(
        &mut self,
        h: &HeaderView<'_>,
        raw: &[u8],
        now: Timestamp,
    ) -> Result<Inbound, Disconnect> {
        if h.poss_dup {
            if !self.poss_dup_ok(h, raw, now) {
                return Ok(Inbound::Consumed);
            }
            self.counters.duplicates_ignored += 1;
            return Ok(Inbound::Consumed);
        }
        let why = format!(
            "MsgSeqNum too low, expecting {} but received {}",
            self.next_in, h.seq
        );
        self.logout(&why, now);
        Err(self.close(&why))
    }

    /// A possible duplicate (43=Y) must carry its OrigSendingTime (else Reject 373=1, tag
    /// 122), and that time cannot be later than its SendingTime (else Reject 373=10 and
    /// Logout), as FIX prescribes; SequenceReset is exempt. A rejected message that was the
    /// one expected uses its number up.
    fn poss_dup_ok(&mut self, h: &HeaderView<'_>, raw: &[u8], now: Timestamp) -> bool {
        if h.msg_type == b"4" {
            return true;
        }
        let problem = match (h.orig_sending_time, h.sending_time) {
            (None, _) => Some((1, Some(i64::from(tags::ORIG_SENDING_TIME)))),
            (Some(orig), Some(sent)) if orig > sent => Some((10, None)),
            _ => None,
        };
        let Some((reason, tag)) = problem else {
            return true;
        };
        tracing::warn!(
            seq = h.seq,
            "PossDup message rejected: {}",
            dictionary::reason_text(reason)
        );
        self.send_reject(raw, h.msg_type, reason, tag, now);
        if h.seq == self.next_in {
            self.next_in += 1;
        }
        if reason == 10 {
            self.logout("", now);
        }
        false
    }

    fn on_in_sequence(
        &mut self,
        msg_type: &[u8],
        raw: &[u8],
        now: Timestamp,
    ) -> Result<Inbound, Disconnect> {
        if !is_fix44_msg_type(msg_type) {
            // FIX: Reject (373=11); the number is used up (already counted).
            self.send_reject(raw, msg_type, 11, None, now);
            return Ok(Inbound::Consumed);
        }
        match msg_type {
            b"0" => Ok(Inbound::Consumed),
            b"1" => {
                self.answer_test_request(raw, now);
                Ok(Inbound::Consumed)
            }
            b"2" => {
                // Reached only from the queue of messages past a gap.
                self.on_resend_request(raw, now);
                Ok(Inbound::Consumed)
            }
            b"3" => {
                self.counters.rejects_received += 1;
                tracing::warn!(text = %field_text(raw, tags::TEXT), ref_seq = %field_text(raw, tags::REF_SEQ_NUM),
                    "session-level Reject received");
                Ok(Inbound::Consumed)
            }
            b"5" => {
                self.logout_text = Some(field_text(raw, tags::TEXT));
                if self.state != State::LoggingOut {
                    self.send_admin("5", now, |_| {});
                }
                Err(self.close("Logout"))
            }
            _ => Ok(Inbound::Deliver),
        }
    }

    fn answer_test_request(&mut self, raw: &[u8], now: Timestamp) {
        let id = field_bytes(raw, tags::TEST_REQ_ID)
            .unwrap_or_default()
            .to_vec();
        self.send_admin("0", now, |b| {
            b.field(tags::TEST_REQ_ID, &id);
        });
    }

    fn on_logon(
        &mut self,
        h: &HeaderView<'_>,
        raw: &[u8],
        now: Timestamp,
    ) -> Result<Inbound, Disconnect> {
        let reset = field_bytes(raw, tags::RESET_SEQ_NUM_FLAG) == Some(b"Y");
        if self.state == State::Active && reset && h.seq == 1 && self.comp_ids_match(h) {
            // FIX: a Logon with 141=Y on a live session resets both sequences to 1; it is
            // answered with a Logon carrying 141=Y.
            tracing::info!("sequence reset by Logon 141=Y during the session");
            self.next_out = 1;
            self.next_in = 2;
            self.resend_until = None;
            self.queued.clear();
            self.store.clear();
            let hb = self.cfg.heartbeat_secs;
            self.send_admin("A", now, |b| {
                b.field_u64(tags::ENCRYPT_METHOD, 0)
                    .field_u64(tags::HEART_BT_INT, u64::from(hb))
                    .field_str(tags::RESET_SEQ_NUM_FLAG, "Y");
            });
            return Ok(Inbound::Consumed);
        }
        if self.state != State::AwaitingLogon {
            return Err(self.close("Logon received on an established session"));
        }
        if self.role == Role::Acceptor && self.cfg.target_comp_id.is_empty() {
            self.cfg.target_comp_id = String::from_utf8_lossy(h.sender).into_owned();
        }
        if !self.comp_ids_match(h) {
            return Err(self.close("Logon CompIDs do not match the session"));
        }
        if self.role == Role::Acceptor {
            if let Some(expected) = &self.cfg.password {
                if field_bytes(raw, tags::PASSWORD) != Some(expected.as_bytes()) {
                    self.send_admin("5", now, |b| {
                        b.field_str(tags::TEXT, "invalid username or password");
                    });
                    return Err(self.close("Logon refused: bad password"));
                }
            }
            if let Some(hb) = field_bytes(raw, tags::HEART_BT_INT).and_then(parse_u64) {
                self.cfg.heartbeat_secs = hb.clamp(1, 3600) as u32;
            }
            // ResetOnLogon on this side resets on every Logon; 141=Y from the initiator asks it.
            if reset || self.cfg.reset_on_logon {
                self.next_out = 1;
                self.next_in = 1;
            }
            let hb = self.cfg.heartbeat_secs;
            self.send_admin("A", now, |b| {
                b.field_u64(tags::ENCRYPT_METHOD, 0)
                    .field_u64(tags::HEART_BT_INT, u64::from(hb));
                if reset {
                    b.field_str(tags::RESET_SEQ_NUM_FLAG, "Y");
                }
            });
        } else if reset && !self.cfg.reset_on_logon {
            self.next_in = 1;
        }
        self.state = State::Active;
        self.state_since = now;
        if h.seq < self.next_in {
            let why = format!(
                "MsgSeqNum too low on Logon, expecting {} but received {}",
                self.next_in, h.seq
            );
            self.logout(&why, now);
            return Err(self.close(&why));
        }
        if h.seq > self.next_in {
            self.request_resend(h.seq, now);
        } else {
            self.next_in += 1;
        }
        Ok(Inbound::LoggedOn)
    }

    fn on_gap(
        &mut self,
        h: &HeaderView<'_>,
        raw: &[u8],
        now: Timestamp,
    ) -> Result<Inbound, Disconnect> {
        // Past the gap: kept and processed in order once the gap is filled (a TestRequest is
        // answered then). A Logout is honoured at once: answered, then the session ends.
        if h.msg_type == b"5" {
            self.logout_text = Some(field_text(raw, tags::TEXT));
            if self.state != State::LoggingOut {
                self.send_admin("5", now, |_| {});
            }
            return Err(self.close("Logout"));
        }
        if self.queued.len() < MAX_QUEUED {
            self.queued.entry(h.seq).or_insert_with(|| raw.to_vec());
        }
        if self.resend_until.is_none() {
            self.request_resend(h.seq, now);
        }
        Ok(Inbound::Consumed)
    }

    fn request_resend(&mut self, seen: u64, now: Timestamp) {
        let from = self.next_in;
        self.resend_until = Some(seen);
        self.counters.resend_requests_sent += 1;
        tracing::info!(from, seen, "sequence gap: requesting resend");
        self.send_admin("2", now, |b| {
            b.field_u64(tags::BEGIN_SEQ_NO, from)
                .field_u64(tags::END_SEQ_NO, 0);
        });
    }

    fn on_sequence_reset(
        &mut self,
        h: &HeaderView<'_>,
        raw: &[u8],
        now: Timestamp,
    ) -> Result<Inbound, Disconnect> {
        let gap_fill = field_bytes(raw, tags::GAP_FILL_FLAG) == Some(b"Y");
        let Some(new_seq) = field_bytes(raw, tags::NEW_SEQ_NO).and_then(parse_u64) else {
            return Err(self.close("SequenceReset without a valid NewSeqNo"));
        };
        if gap_fill {
            if h.seq > self.next_in {
                return self.on_gap(h, raw, now);
            }
            if h.seq < self.next_in {
                return self.too_low(h, raw, now);
            }
        }
        if new_seq < self.next_in {
            if gap_fill {
                // A gap fill that would move backwards is a counterparty bug; ignore it.
                return Ok(Inbound::Consumed);
            }
            // FIX: a Reset that would move the number backwards is rejected (373=5).
            self.send_reject(raw, h.msg_type, 5, None, now);
            return Ok(Inbound::Consumed);
        }
        self.next_in = new_seq;
        if self.resend_until.is_some_and(|until| self.next_in >= until) {
            self.resend_until = None;
        }
        Ok(Inbound::Consumed)
    }

    /// A ResendRequest is served whatever its MsgSeqNum, also while this side waits for a
    /// resend of its own (both sides resending at once is the case venues certify); then its
    /// number counts like any other: in sequence it is used up, past a gap it reveals the gap
    /// (it is not queued: it has been served).
    fn on_resend_request_any_seq(
        &mut self,
        h: &HeaderView<'_>,
        now: Timestamp,
        raw: &[u8],
    ) -> Result<Inbound, Disconnect> {
        self.on_resend_request(raw, now);
        if h.seq == self.next_in {
            self.next_in += 1;
            if self.resend_until.is_some_and(|until| self.next_in >= until) {
                self.resend_until = None;
            }
        } else if h.seq > self.next_in && self.resend_until.is_none() {
            self.request_resend(h.seq, now);
        }
        Ok(Inbound::Consumed)
    }

    fn on_resend_request(&mut self, raw: &[u8], now: Timestamp) {
        self.counters.resend_requests_served += 1;
        let begin = field_bytes(raw, tags::BEGIN_SEQ_NO)
            .and_then(parse_u64)
            .unwrap_or(1)
            .max(1);
        let end_field = field_bytes(raw, tags::END_SEQ_NO)
            .and_then(parse_u64)
            .unwrap_or(0);
        let last = self.next_out - 1;
        let end = if end_field == 0 {
            last
        } else {
            end_field.min(last)
        };
        let mut seq = begin;
        while seq <= end {
            if let Some(Stored {
                msg_type,
                sent_at,
                body,
            }) = self.store.get(seq)
            {
                self.encode(&msg_type, seq, now, Some(sent_at), |b| {
                    b.raw_fields(&body);
                });
                seq += 1;
                continue;
            }
            // A run of messages we cannot (admin) or will not (evicted) resend: one gap fill.
            let mut next = seq + 1;
            while next <= end && self.store.find(next).is_none() {
                next += 1;
            }
            self.encode("4", seq, now, Some(now), |b| {
                b.field_str(tags::GAP_FILL_FLAG, "Y")
                    .field_u64(tags::NEW_SEQ_NO, next);
            });
            seq = next;
        }
    }

    /// Heartbeats, test requests and handshake timeouts.
    pub fn on_timer(&mut self, now: Timestamp) -> Result<(), Disconnect> {
        let hb_ns = i64::from(self.cfg.heartbeat_secs.max(1)) * 1_000_000_000;
        match self.state {
            State::AwaitingLogon | State::LoggingOut
                if now.0 - self.state_since.0 > HANDSHAKE_TIMEOUT_NS =>
            {
                return Err(self.close("Logon/Logout not answered in time"));
            }
            State::Active => {
                // An unanswered TestRequest ends the session before anything else is sent.
                if self
                    .test_request_sent
                    .is_some_and(|sent| now.0 - sent.0 >= hb_ns)
                {
                    return Err(self.close("no answer to TestRequest"));
                }
                if now.0 - self.last_sent.0 >= hb_ns {
                    self.send_admin("0", now, |_| {});
                }
                match self.test_request_sent {
                    None if now.0 - self.last_recv.0 >= hb_ns + hb_ns / 5 => {
                        self.counters.test_requests_sent += 1;
                        self.test_request_sent = Some(now);
                        let id = now.0.to_string();
                        self.send_admin("1", now, |b| {
                            b.field_str(tags::TEST_REQ_ID, &id);
                        });
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// SendingTime present and within the tolerance of the receive clock.
    fn sending_time_ok(&self, h: &HeaderView<'_>, now: Timestamp) -> bool {
        let Some(tolerance) = self.cfg.sending_time_tolerance else {
            return true;
        };
        h.sending_time
            .is_some_and(|t| u128::from(t.0.abs_diff(now.0)) <= tolerance.as_nanos())
    }

    /// Answers an application message this side does not support with a
    /// BusinessMessageReject (35=j, 380=3 "Unsupported Message Type"), as FIX prescribes.
    pub fn reject_unsupported(&mut self, raw: &[u8], now: Timestamp) {
        let seq = field_bytes(raw, tags::MSG_SEQ_NUM)
            .and_then(parse_u64)
            .unwrap_or(0);
        let ref_type = field_text(raw, tags::MSG_TYPE);
        let route = reverse_route(raw);
        self.send_app("j", now, |b| {
            for (t, v) in &route {
                b.field(*t, v);
            }
            b.field_u64(tags::REF_SEQ_NUM, seq)
                .field_str(tags::TEXT, "Unsupported Message Type")
                .field_str(tags::REF_MSG_TYPE, &ref_type)
                .field_u64(tags::BUSINESS_REJECT_REASON, 3);
        });
    }

    /// A session-level Reject of message `raw` with FIX's reason code and, when the reason
    /// concerns a field, its tag; routing fields are reversed, as FIX prescribes.
    fn send_reject(
        &mut self,
        raw: &[u8],
        msg_type: &[u8],
        reason: u32,
        tag: Option<i64>,
        now: Timestamp,
    ) {
        self.counters.rejects_sent += 1;
        let ref_type = String::from_utf8_lossy(msg_type).into_owned();
        let seq = field_bytes(raw, tags::MSG_SEQ_NUM).and_then(parse_u64);
        let route = reverse_route(raw);
        self.send_admin("3", now, |b| {
            for (t, v) in &route {
                b.field(*t, v);
            }
            if let Some(seq) = seq {
                b.field_u64(tags::REF_SEQ_NUM, seq);
            }
            b.field_str(tags::TEXT, dictionary::reason_text(reason));
            if let Some(t) = tag {
                b.field_str(tags::REF_TAG_ID, &t.to_string());
            }
            if !ref_type.is_empty() {
                b.field_str(tags::REF_MSG_TYPE, &ref_type);
            }
            b.field_u64(tags::SESSION_REJECT_REASON, u64::from(reason));
        });
    }

    /// A message that failed the dictionary: garbled ones are ignored; a Logon before the
    /// session is up is refused by disconnecting; any other is rejected, and its number is
    /// used up when it was the one expected (never a Logon's or a SequenceReset's).
    fn on_invalid(
        &mut self,
        h: &HeaderView<'_>,
        raw: &[u8],
        v: Option<Violation>,
        now: Timestamp,
    ) -> Result<Inbound, Disconnect> {
        let Some(v) = v else {
            tracing::warn!(
                seq = h.seq,
                "garbled FIX message ignored (a tag is not a number)"
            );
            return Ok(Inbound::Consumed);
        };
        let tag = v.tag.map_or(String::new(), |t| t.to_string());
        if h.msg_type == b"A" && self.state != State::Active {
            return Err(self.close(&format!("Logon refused: {} (tag {tag})", v.text())));
        }
        tracing::warn!(seq = h.seq, msg_type = %String::from_utf8_lossy(h.msg_type),
            reason = v.reason, tag, "message rejected: {}", v.text());
        self.send_reject(raw, h.msg_type, v.reason, v.tag, now);
        if h.msg_type != b"A" && h.msg_type != b"4" && h.seq == self.next_in {
            self.next_in += 1;
            if self.resend_until.is_some_and(|until| self.next_in >= until) {
                self.resend_until = None;
            }
        }
        Ok(Inbound::Consumed)
    }

    fn comp_ids_match(&self, h: &HeaderView<'_>) -> bool {
        h.sender == self.cfg.target_comp_id.as_bytes()
            && h.target == self.cfg.sender_comp_id.as_bytes()
    }

    fn close(&mut self, why: &str) -> Disconnect {
        self.state = State::Closed;
        Disconnect(why.to_owned())
    }
}

/// Session-level message types, always validated in full.
fn is_session_msg_type(t: &[u8]) -> bool {
    matches!(t, b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"A")
}

/// The routing fields of an answer to `raw`: OnBehalfOf* becomes DeliverTo* and back.
fn reverse_route(raw: &[u8]) -> Vec<(u32, Vec<u8>)> {
    const PAIRS: [(u32, u32); 6] = [
        (tags::ON_BEHALF_OF_COMP_ID, tags::DELIVER_TO_COMP_ID),
        (tags::DELIVER_TO_COMP_ID, tags::ON_BEHALF_OF_COMP_ID),
        (tags::ON_BEHALF_OF_SUB_ID, tags::DELIVER_TO_SUB_ID),
        (tags::DELIVER_TO_SUB_ID, tags::ON_BEHALF_OF_SUB_ID),
        (tags::ON_BEHALF_OF_LOCATION_ID, tags::DELIVER_TO_LOCATION_ID),
        (tags::DELIVER_TO_LOCATION_ID, tags::ON_BEHALF_OF_LOCATION_ID),
    ];
    PAIRS
        .iter()
        .filter_map(|&(from, to)| {
            field_bytes(raw, from)
                .filter(|v| !v.is_empty())
                .map(|v| (to, v.to_vec()))
        })
        .collect()
}

/// First value of `tag` in a framed message.
pub fn field_bytes(raw: &[u8], tag: u32) -> Option<&[u8]> {
    Fields::new(raw)
        .filter_map(Result::ok)
        .find(|(t, _)| *t == tag)
        .map(|(_, v)| v)
}

/// First value of `tag` as text (empty when absent).
pub fn field_text(raw: &[u8], tag: u32) -> String {
    field_bytes(raw, tag)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::decode::Decoder;
    use crate::fix::frame;

    const T: Timestamp = Timestamp(1_795_428_000_000_000_000);

    fn cfg(sender: &str, target: &str) -> SessionConfig {
        SessionConfig::new(sender, target)
    }

    /// Splits queued output into messages and returns them as `|`-separated text.
    fn sent(s: &mut Session) -> Vec<String> {
        let out = std::mem::take(s.take_output());
        let mut msgs = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let n = frame::check(rest).expect("well-formed output");
            msgs.push(String::from_utf8_lossy(&rest[..n]).replace('\x01', "|"));
            rest = &rest[n..];
        }
        msgs
    }

    /// Feeds every queued message of `from` to `to` (received at `T`).
    fn deliver(from: &mut Session, to: &mut Session) -> Vec<Inbound> {
        deliver_at(from, to, T)
            .into_iter()
            .map(|r| r.expect("accepted"))
            .collect()
    }

    fn logged_on_pair() -> (Session, Session) {
        let mut ini = Session::new(cfg("REC", "LP"), Role::Initiator, 1, 1, ResendStore::new(0));
        let mut acc = Session::new(cfg("LP", ""), Role::Acceptor, 1, 1, ResendStore::new(100));
        ini.on_connect(T);
        acc.on_connect(T);
        assert_eq!(deliver(&mut ini, &mut acc), [Inbound::LoggedOn]);
        assert_eq!(deliver(&mut acc, &mut ini), [Inbound::LoggedOn]);
        (ini, acc)
    }

    /// Delivers `from`'s queued messages to `to` as if received at `now`.
    fn deliver_at(
        from: &mut Session,
        to: &mut Session,
        now: Timestamp,
    ) -> Vec<Result<Inbound, Disconnect>> {
        let out = std::mem::take(from.take_output());
        let mut rest = &out[..];
        let mut d = Decoder::new();
        let mut results = Vec::new();
        while !rest.is_empty() {
            let n = frame::check(rest).unwrap();
            let decoded = d.decode(&rest[..n]).unwrap();
            results.push(to.on_message(&decoded.header, &rest[..n], now));
            rest = &rest[n..];
        }
        results
    }

    /// What could go wrong: a counterparty whose clock is minutes off (or a garbled 52=) puts
    /// ticks in the wrong place. FIX's rule: reject the message (373=10), log out; a Logon with
    /// a bad time is refused by disconnecting.
    #[test]
    fn a_sending_time_off_by_more_than_the_tolerance_is_rejected_and_the_session_logged_out() {
        let (mut ini, mut acc) = logged_on_pair();
        acc.send_admin("0", T, |_| {});
        let late = Timestamp(T.0 + 121 * 1_000_000_000);
        assert_eq!(
            deliver_at(&mut acc, &mut ini, late),
            [Ok(Inbound::Consumed)]
        );
        let out = sent(&mut ini);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out[0].contains("|35=3|")
                && out[0].contains("|45=2|")
                && out[0].contains("|373=10|")
                && out[0].contains("|372=0|"),
            "{}",
            out[0]
        );
        assert!(out[1].contains("|35=5|"), "{}", out[1]);
        assert_eq!(ini.next_in(), 3, "the rejected message's number is used up");
        assert_eq!(ini.counters.rejects_sent, 1);

        let mut ini = Session::new(cfg("REC", "LP"), Role::Initiator, 1, 1, ResendStore::new(0));
        let mut acc = Session::new(cfg("LP", ""), Role::Acceptor, 1, 1, ResendStore::new(0));
        ini.on_connect(T);
        acc.on_connect(T);
        let early = Timestamp(T.0 - 121 * 1_000_000_000);
        assert!(
            deliver_at(&mut ini, &mut acc, early)[0].is_err(),
            "a Logon out of range is refused"
        );
        assert!(
            sent(&mut acc).is_empty(),
            "nothing is sent before the disconnect"
        );
        // Within the tolerance, all is well.
        let (mut ini, mut acc) = logged_on_pair();
        acc.send_admin("0", T, |_| {});
        let near = Timestamp(T.0 + 119 * 1_000_000_000);
        assert_eq!(
            deliver_at(&mut acc, &mut ini, near),
            [Ok(Inbound::Consumed)]
        );
        assert!(sent(&mut ini).is_empty());
    }

    #[test]
    fn logon_exchange_activates_both_sides_and_learns_the_initiator() {
        let (ini, acc) = logged_on_pair();
        assert_eq!((ini.state(), acc.state()), (State::Active, State::Active));
        assert_eq!(acc.config().target_comp_id, "REC");
        assert_eq!((ini.next_in(), ini.next_out()), (2, 2));
    }

    #[test]
    fn a_gap_triggers_one_resend_request_and_the_resend_fills_it_exactly_once() {
        let (mut ini, mut acc) = logged_on_pair();
        for _ in 0..3 {
            acc.send_app("X", T, |b| {
                b.field_u64(268, 0);
            });
        }
        // The first two (seq 2 and 3) are lost in transit; seq 4 arrives.
        let out = std::mem::take(acc.take_output());
        let mut d = Decoder::new();
        let n1 = frame::check(&out).unwrap();
        let n2 = frame::check(&out[n1..]).unwrap();
        let third = &out[n1 + n2..];
        let h = d.decode(third).unwrap().header;
        assert_eq!(ini.on_message(&h, third, T), Ok(Inbound::Consumed));
        assert!(ini.resending());
        let request = ini.take_output().clone();
        let text = String::from_utf8_lossy(&request).replace('\x01', "|");
        assert!(
            text.contains("|35=2|") && text.contains("|7=2|16=0|"),
            "{text}"
        );
        // The same message again while resending: no second request.
        ini.take_output().clear();
        assert_eq!(ini.on_message(&h, third, T), Ok(Inbound::Consumed));
        assert!(ini.take_output().is_empty());
        // The acceptor serves the request from its store, with PossDupFlag and OrigSendingTime.
        ini.take_output().extend_from_slice(&request);
        assert_eq!(deliver(&mut ini, &mut acc), [Inbound::Consumed]);
        let resent = acc.take_output().clone();
        let text = String::from_utf8_lossy(&resent).replace('\x01', "|");
        assert_eq!(text.matches("|43=Y|122=").count(), 3, "{text}");
        assert_eq!(
            deliver(&mut acc, &mut ini),
            [Inbound::Deliver, Inbound::Deliver, Inbound::Deliver],
            "each missed message exactly once"
        );
        assert!(!ini.resending());
        assert_eq!(ini.next_in(), 5);
    }

    #[test]
    fn the_resend_store_keeps_the_last_messages_whole_and_forgets_on_a_reset() {
        let mut store = ResendStore::new(3);
        let body = |seq: u64| format!("268=1\x01279=0\x01{}=x\x01", "9".repeat(seq as usize));
        for seq in 2..=7 {
            let kind = if seq % 2 == 0 { "X" } else { "AB" };
            store.push(seq, kind, Timestamp(seq as i64), body(seq).as_bytes());
        }
        for seq in 2..=4 {
            assert!(store.get(seq).is_none(), "{seq} was evicted");
        }
        for seq in 5..=7 {
            let m = store.get(seq).expect("kept");
            assert_eq!(m.msg_type, if seq % 2 == 0 { "X" } else { "AB" });
            assert_eq!(m.sent_at, Timestamp(seq as i64));
            assert_eq!(m.body, body(seq).as_bytes());
        }
        // A sequence reset: nothing before it can be asked for.
        store.push(1, "X", T, b"58=a\x01");
        assert!(store.get(7).is_none());
        assert_eq!(store.get(1).expect("kept").body, b"58=a\x01");
        assert!(ResendStore::new(0).get(1).is_none());
    }

    #[test]
    fn duplicates_with_possdup_are_ignored_and_without_it_are_fatal() {
        let (mut ini, mut acc) = logged_on_pair();
        acc.send_app("X", T, |b| {
            b.field_u64(268, 0);
        });
        let msg = std::mem::take(acc.take_output());
        let mut d = Decoder::new();
        let h = d.decode(&msg).unwrap().header;
        assert_eq!(ini.on_message(&h, &msg, T), Ok(Inbound::Deliver));
        let mut dup = h;
        dup.poss_dup = true;
        // Without OrigSendingTime a possible duplicate is rejected (373=1, tag 122).
        assert_eq!(ini.on_message(&dup, &msg, T), Ok(Inbound::Consumed));
        assert_eq!(ini.counters.duplicates_ignored, 0);
        let reject = sent(&mut ini);
        assert!(
            reject
                .iter()
                .any(|m| m.contains("|35=3|") && m.contains("|371=122|") && m.contains("|373=1|")),
            "{reject:?}"
        );
        dup.orig_sending_time = h.sending_time;
        assert_eq!(ini.on_message(&dup, &msg, T), Ok(Inbound::Consumed));
        assert_eq!(ini.counters.duplicates_ignored, 1);
        let err = ini.on_message(&h, &msg, T).unwrap_err();
        assert!(err.0.contains("too low"), "{err}");
        assert!(
            sent(&mut ini).iter().any(|m| m.contains("|35=5|")),
            "a Logout says why"
        );
    }

    #[test]
    fn sequence_reset_gap_fill_moves_the_expected_number_forward() {
        let (mut ini, mut acc) = logged_on_pair();
        acc.encode("4", 2, T, Some(T), |b| {
            b.field_str(tags::GAP_FILL_FLAG, "Y")
                .field_u64(tags::NEW_SEQ_NO, 10);
        });
        assert_eq!(deliver(&mut acc, &mut ini), [Inbound::Consumed]);
        assert_eq!(ini.next_in(), 10);
    }

    #[test]
    fn a_test_request_is_answered_with_its_id_and_silence_is_probed() {
        let (mut ini, mut acc) = logged_on_pair();
        acc.send_admin("1", T, |b| {
            b.field_str(tags::TEST_REQ_ID, "ping-7");
        });
        deliver(&mut acc, &mut ini);
        let out = sent(&mut ini);
        assert!(
            out[0].contains("|35=0|") && out[0].contains("|112=ping-7|"),
            "{out:?}"
        );
        // 30 s heartbeat: at 31 s of silence a Heartbeat goes out, at 36 s a TestRequest,
        // and with no answer 30 s later the session closes.
        let s = |secs: i64| Timestamp(T.0 + secs * 1_000_000_000);
        ini.on_timer(s(31)).unwrap();
        assert!(sent(&mut ini)[0].contains("|35=0|"));
        ini.on_timer(s(37)).unwrap();
        assert!(sent(&mut ini).iter().any(|m| m.contains("|35=1|")));
        assert!(ini.on_timer(s(68)).is_err());
    }

    #[test]
    fn a_logon_from_the_wrong_counterparty_or_with_a_bad_password_is_refused() {
        let mut ini = Session::new(
            cfg("REC", "OTHER"),
            Role::Initiator,
            1,
            1,
            ResendStore::new(0),
        );
        let mut acc = Session::new(cfg("LP", "REC2"), Role::Acceptor, 1, 1, ResendStore::new(0));
        ini.on_connect(T);
        acc.on_connect(T);
        let out = std::mem::take(ini.take_output());
        let h = Decoder::new().decode(&out).unwrap().header;
        assert!(acc.on_message(&h, &out, T).is_err());

        let mut ini = Session::new(
            SessionConfig {
                password: Some("wrong".into()),
                ..cfg("REC", "LP")
            },
            Role::Initiator,
            1,
            1,
            ResendStore::new(0),
        );
        let mut acc = Session::new(
            SessionConfig {
                password: Some("right".into()),
                ..cfg("LP", "")
            },
            Role::Acceptor,
            1,
            1,
            ResendStore::new(0),
        );
        ini.on_connect(T);
        acc.on_connect(T);
        let out = std::mem::take(ini.take_output());
        let h = Decoder::new().decode(&out).unwrap().header;
        let err = acc.on_message(&h, &out, T).unwrap_err();
        assert!(err.0.contains("password"), "{err}");
        assert!(sent(&mut acc)[0].contains("|35=5|"));
    }
}
