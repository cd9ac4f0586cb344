//! Decoding FIX messages in one pass: the standard header for the session layer, and market
//! data (35=W snapshots, 35=X incrementals) straight into top-of-book ticks.
//!
//! Zero-copy: values are slices of the received buffer; the entry list is reused, so decoding
//! allocates nothing in steady state. A message is validated whole before any of it is applied:
//! a malformed message changes no book and produces no tick.

use rustc_hash::FxHashMap;

use super::frame::{FieldSyntaxError, Fields};
use super::tags;
use crate::tick::{
    Decimal, MsgRef, OriginId, Price, Size, SourceId, SymbolId, Tick, Timestamp, NANOS_PER_DAY,
};

/// The header fields every message carries, borrowed from the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderView<'a> {
    pub msg_type: &'a [u8],
    pub seq: u64,
    pub sender: &'a [u8],
    pub target: &'a [u8],
    pub sending_time: Option<Timestamp>,
    pub poss_dup: bool,
    pub orig_sending_time: Option<Timestamp>,
}

/// Why a message could not be decoded or applied. Carries no copy of the message; callers log
/// the raw bytes alongside.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error(transparent)]
    Syntax(#[from] FieldSyntaxError),
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{field}: invalid value {value:?}")]
    BadValue { field: &'static str, value: String },
    #[error("NoMDEntries says {declared}, message has {found}")]
    EntryCount { declared: u64, found: u64 },
    #[error("unknown MDEntryType {0:?} (only 0=bid and 1=offer are recorded)")]
    UnknownEntryType(String),
    #[error("unknown symbol {0:?} (not subscribed)")]
    UnknownSymbol(String),
}

fn bad(field: &'static str, value: &[u8]) -> DecodeError {
    DecodeError::BadValue {
        field,
        value: String::from_utf8_lossy(value).into_owned(),
    }
}

/// Book side of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Bid,
    Offer,
}

/// What an entry does to its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Set the side (snapshot entry, or incremental New/Change).
    Set,
    /// Clear the side (incremental Delete).
    Delete,
}

/// One market-data entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub action: Action,
    pub side: Side,
    pub symbol: &'a [u8],
    pub price: Option<Price>,
    pub size: Option<Size>,
}

/// A decoded message: header plus, for 35=W/X, its entries.
#[derive(Debug, Default)]
pub struct Decoded<'a> {
    pub header: HeaderView<'a>,
    /// 35=W: the snapshot's symbol (55 outside the group).
    pub snapshot_symbol: Option<&'a [u8]>,
    pub entries: Vec<Entry<'a>>,
}

/// A reusable one-pass decoder.
#[derive(Debug, Default)]
pub struct Decoder {
    // Entries of the last message; lifetimes are re-bound per call (see `decode`).
    scratch: Vec<Entry<'static>>,
}

/// An entry under construction.
#[derive(Default)]
struct Partial<'a> {
    action: Option<&'a [u8]>,
    kind: Option<&'a [u8]>,
    symbol: Option<&'a [u8]>,
    price: Option<&'a [u8]>,
    size: Option<&'a [u8]>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes a framed message (see `frame::check`). Market-data entries are validated here.
    pub fn decode<'a>(&mut self, msg: &'a [u8]) -> Result<Decoded<'a>, DecodeError> {
        // Reuse the entry buffer's allocation across messages of different lifetimes: it is
        // always empty when handed over, so no borrowed value outlives its message.
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut entries: Vec<Entry<'a>> = scratch.into_iter().map(|_| unreachable!()).collect();
        let result = decode_into(msg, &mut entries);
        match result {
            Ok((header, snapshot_symbol)) => Ok(Decoded {
                header,
                snapshot_symbol,
                entries,
            }),
            Err(e) => {
                self.recycle(entries);
                Err(e)
            }
        }
    }

    /// Hands a decoded message's entry buffer back for reuse.
    pub fn recycle(&mut self, mut entries: Vec<Entry<'_>>) {
        entries.clear();
        self.scratch = entries.into_iter().map(|_| unreachable!()).collect();
    }
}

/// Reads `msg`'s header fields and its market-data entries into `entries`, checking the
/// entry count it declares (NoMDEntries); returns the header and a snapshot's symbol.
///
/// Long (~80 lines) on purpose: the decoder's hot loop, one match over the tags of a message.
fn decode_into<'a>(
    msg: &'a [u8],
    entries: &mut Vec<Entry<'a>>,
) -> Result<(HeaderView<'a>, Option<&'a [u8]>), DecodeError> {
    let mut h = HeaderView::default();
    let mut snapshot_symbol = None;
    let mut declared: Option<u64> = None;
    let mut cur: Option<Partial<'a>> = None;
    let mut in_group = false;
    let mut group_start_tag = 0u32;
    for field in Fields::new(msg) {
        let (tag, value) = field?;
        match tag {
            tags::MSG_TYPE => {
                h.msg_type = value;
                group_start_tag = match value {
                    b"W" => tags::MD_ENTRY_TYPE,
                    b"X" => tags::MD_UPDATE_ACTION,
                    _ => 0,
                };
            }
            tags::MSG_SEQ_NUM => {
                h.seq = parse_u64(value).ok_or_else(|| bad("MsgSeqNum(34)", value))?
            }
            tags::SENDER_COMP_ID => h.sender = value,
            tags::TARGET_COMP_ID => h.target = value,
            tags::SENDING_TIME => {
                h.sending_time =
                    Some(parse_fix_time(value).ok_or_else(|| bad("SendingTime(52)", value))?)
            }
            tags::POSS_DUP_FLAG => h.poss_dup = value == b"Y",
            tags::ORIG_SENDING_TIME => {
                h.orig_sending_time =
                    Some(parse_fix_time(value).ok_or_else(|| bad("OrigSendingTime(122)", value))?)
            }
            tags::NO_MD_ENTRIES if group_start_tag != 0 => {
                declared = Some(parse_u64(value).ok_or_else(|| bad("NoMDEntries(268)", value))?);
                in_group = true;
            }
            t if in_group && t == group_start_tag => {
                if let Some(p) = cur.take() {
                    entries.push(finish_entry(p, &h, snapshot_symbol)?);
                }
                let mut p = Partial::default();
                if t == tags::MD_ENTRY_TYPE {
                    p.kind = Some(value);
                } else {
                    p.action = Some(value);
                }
                cur = Some(p);
            }
            tags::MD_ENTRY_TYPE if cur.is_some() => set(&mut cur, |p| p.kind = Some(value)),
            tags::MD_UPDATE_ACTION if cur.is_some() => set(&mut cur, |p| p.action = Some(value)),
            tags::MD_ENTRY_PX if cur.is_some() => set(&mut cur, |p| p.price = Some(value)),
            tags::MD_ENTRY_SIZE if cur.is_some() => set(&mut cur, |p| p.size = Some(value)),
            tags::SYMBOL if cur.is_some() => set(&mut cur, |p| p.symbol = Some(value)),
            tags::SYMBOL if !in_group => snapshot_symbol = Some(value),
            tags::CHECK_SUM => {
                if let Some(p) = cur.take() {
                    entries.push(finish_entry(p, &h, snapshot_symbol)?);
                }
            }
            _ => {}
        }
    }
    if h.msg_type.is_empty() {
        return Err(DecodeError::Missing("MsgType(35)"));
    }
    if group_start_tag != 0 {
        let declared = declared.ok_or(DecodeError::Missing("NoMDEntries(268)"))?;
        if declared != entries.len() as u64 {
            return Err(DecodeError::EntryCount {
                declared,
                found: entries.len() as u64,
            });
        }
        if h.msg_type == b"W" && snapshot_symbol.is_none() {
            return Err(DecodeError::Missing("Symbol(55)"));
        }
    }
    Ok((h, snapshot_symbol))
}

fn set<'a>(cur: &mut Option<Partial<'a>>, f: impl FnOnce(&mut Partial<'a>)) {
    if let Some(p) = cur.as_mut() {
        f(p);
    }
}

fn finish_entry<'a>(
    p: Partial<'a>,
    h: &HeaderView<'a>,
    snapshot_symbol: Option<&'a [u8]>,
) -> Result<Entry<'a>, DecodeError> {
    let snapshot = h.msg_type == b"W";
    let action = if snapshot {
        Action::Set
    } else {
        match p.action {
            Some(b"0") | Some(b"1") => Action::Set,
            Some(b"2") => Action::Delete,
            Some(v) => return Err(bad("MDUpdateAction(279)", v)),
            None => return Err(DecodeError::Missing("MDUpdateAction(279)")),
        }
    };
    let side = match p.kind {
        Some(b"0") => Side::Bid,
        Some(b"1") => Side::Offer,
        Some(v) => {
            return Err(DecodeError::UnknownEntryType(
                String::from_utf8_lossy(v).into_owned(),
            ))
        }
        None => return Err(DecodeError::Missing("MDEntryType(269)")),
    };
    let symbol = match (p.symbol, snapshot_symbol) {
        (Some(s), _) => s,
        (None, Some(s)) if snapshot => s,
        _ => return Err(DecodeError::Missing("Symbol(55) in MDEntry")),
    };
    let decimal = |field: &'static str, v: Option<&[u8]>| -> Result<Option<Decimal>, DecodeError> {
        v.map(|v| Decimal::parse_bytes(v).map_err(|_| bad(field, v)))
            .transpose()
    };
    let price = decimal("MDEntryPx(270)", p.price)?;
    let size = decimal("MDEntrySize(271)", p.size)?;
    if action == Action::Set && price.is_none() {
        return Err(DecodeError::Missing("MDEntryPx(270)"));
    }
    Ok(Entry {
        action,
        side,
        symbol,
        price,
        size,
    })
}

/// Just the header fields, for sequencing and answering a message whose body did not decode
/// (a field of the body may be anything but `tag=value`; the header must be readable).
pub fn parse_header(msg: &[u8]) -> Option<HeaderView<'_>> {
    let mut h = HeaderView::default();
    for (tag, v) in super::dictionary::signed_fields(msg)? {
        match u32::try_from(tag).unwrap_or(0) {
            tags::MSG_TYPE => h.msg_type = v,
            tags::MSG_SEQ_NUM => h.seq = parse_u64(v)?,
            tags::SENDER_COMP_ID => h.sender = v,
            tags::TARGET_COMP_ID => h.target = v,
            tags::SENDING_TIME => h.sending_time = parse_fix_time(v),
            tags::POSS_DUP_FLAG => h.poss_dup = v == b"Y",
            tags::ORIG_SENDING_TIME => h.orig_sending_time = parse_fix_time(v),
            _ => {}
        }
    }
    (!h.msg_type.is_empty() && h.seq > 0).then_some(h)
}

/// Parses a decimal integer with no sign (MsgSeqNum, counts).
pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

/// Years a FIX UTCTimestamp may carry: anything else is a garbled field or a broken clock.
pub const FIX_YEARS: std::ops::RangeInclusive<i64> = 2000..=2100;

/// Parses a FIX UTCTimestamp `YYYYMMDD-HH:MM:SS[.f{1,9}]` into nanoseconds since 1970 UTC.
/// `None` unless it is a calendar date in [`FIX_YEARS`] with a valid time of day (second 60
/// allowed for a leap second); every step is checked, so no input overflows.
pub fn parse_fix_time(v: &[u8]) -> Option<Timestamp> {
    if v.len() < 17 || v[8] != b'-' || v[11] != b':' || v[14] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        v[r].iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(12..14)?, num(15..17)?);
    if !FIX_YEARS.contains(&y) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut nanos = 0i64;
    if v.len() > 17 {
        let frac = &v[18..];
        if v[17] != b'.' || frac.is_empty() || frac.len() > 9 {
            return None;
        }
        for &c in frac {
            if !c.is_ascii_digit() {
                return None;
            }
            nanos = nanos * 10 + i64::from(c - b'0');
        }
        nanos *= 10i64.pow(9 - frac.len() as u32);
    }
    let days = crate::civil::days_from_civil(y, mo, d)?;
    days.checked_mul(NANOS_PER_DAY)?
        .checked_add(((hh * 60 + mm) * 60 + ss) * 1_000_000_000)?
        .checked_add(nanos)
        .map(Timestamp)
}

/// Top of book of one subscribed symbol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Book {
    bid: Option<(Price, Option<Size>)>,
    ask: Option<(Price, Option<Size>)>,
}

/// Per-session market-data state: the books of the subscribed symbols, and the mapping of a
/// decoded message to one tick per symbol it touched.
#[derive(Debug)]
pub struct MarketData {
    source: SourceId,
    /// The session's origin: each tick carries its message's MsgSeqNum under it.
    origin: OriginId,
    index: FxHashMap<Box<[u8]>, usize>,
    symbols: Vec<SymbolId>,
    books: Vec<Book>,
    /// Symbols touched by the current message, in first-touch order (reused).
    touched: Vec<usize>,
    staged: Vec<Book>,
}

impl MarketData {
    /// `symbols`: (FIX Symbol value, recorder id) of every subscribed instrument.
    pub fn new(source: SourceId, origin: OriginId, symbols: &[(String, SymbolId)]) -> MarketData {
        MarketData {
            source,
            origin,
            index: symbols
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (name.as_bytes().into(), i))
                .collect(),
            symbols: symbols.iter().map(|(_, id)| *id).collect(),
            books: vec![Book::default(); symbols.len()],
            touched: Vec::with_capacity(symbols.len()),
            staged: Vec::with_capacity(symbols.len()),
        }
    }

    /// Applies a decoded 35=W or 35=X and appends one tick per touched symbol to `out`.
    /// `ts_event` is the message's (original) sending time; on error nothing changes.
    pub fn apply(
        &mut self,
        msg: &Decoded<'_>,
        ts_event: Timestamp,
        ts_recv: Timestamp,
        out: &mut Vec<Tick>,
    ) -> Result<(), DecodeError> {
        self.touched.clear();
        self.staged.clear();
        let snapshot = msg.header.msg_type == b"W";
        if let (true, Some(sym)) = (snapshot, msg.snapshot_symbol) {
            // A snapshot replaces the whole book, even with zero entries.
            let i = self.lookup(sym)?;
            self.stage(i, true);
        }
        for e in &msg.entries {
            let i = self.lookup(e.symbol)?;
            let slot = self.stage(i, false);
            let side = match e.side {
                Side::Bid => &mut self.staged[slot].bid,
                Side::Offer => &mut self.staged[slot].ask,
            };
            *side = match (e.action, e.price) {
                (Action::Set, Some(px)) => Some((px, e.size)),
                _ => None,
            };
        }
        // Validated: commit staged books and emit.
        let last = self.touched.len().saturating_sub(1);
        for (slot, &i) in self.touched.iter().enumerate() {
            let book = self.staged[slot];
            self.books[i] = book;
            out.push(Tick {
                symbol: self.symbols[i],
                source: self.source,
                ts_event,
                ts_recv,
                bid: book.bid.map(|b| b.0),
                ask: book.ask.map(|a| a.0),
                bid_size: book.bid.and_then(|b| b.1),
                ask_size: book.ask.and_then(|a| a.1),
                msg: MsgRef::new(self.origin, msg.header.seq, slot < last),
            });
        }
        Ok(())
    }

    /// The recorder's id of a subscribed symbol's FIX name.
    pub fn symbol_id(&self, symbol: &[u8]) -> Option<SymbolId> {
        self.index.get(symbol).map(|&i| self.symbols[i])
    }

    fn lookup(&self, symbol: &[u8]) -> Result<usize, DecodeError> {
        self.index
            .get(symbol)
            .copied()
            .ok_or_else(|| DecodeError::UnknownSymbol(String::from_utf8_lossy(symbol).into_owned()))
    }

    /// Slot in `staged` for symbol `i`, staging its current (or, on `clear`, empty) book.
    fn stage(&mut self, i: usize, clear: bool) -> usize {
        if let Some(slot) = self.touched.iter().position(|&t| t == i) {
            return slot;
        }
        self.touched.push(i);
        self.staged.push(if clear {
            Book::default()
        } else {
            self.books[i]
        });
        self.touched.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::frame::tests::frame;

    fn md() -> MarketData {
        MarketData::new(
            SourceId(0),
            OriginId(1),
            &[
                ("EURUSD".into(), SymbolId(0)),
                ("USDJPY".into(), SymbolId(1)),
            ],
        )
    }

    fn run(md: &mut MarketData, body: &str) -> Result<Vec<Tick>, DecodeError> {
        let m = frame(body);
        let mut d = Decoder::new();
        let decoded = d.decode(&m)?;
        let mut out = Vec::new();
        md.apply(&decoded, Timestamp(1), Timestamp(2), &mut out)?;
        Ok(out)
    }

    fn px(
        t: &Tick,
    ) -> (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) {
        let s = |d: Option<Decimal>| d.map(|d| d.to_string());
        (s(t.bid), s(t.ask), s(t.bid_size), s(t.ask_size))
    }

    const SNAP: &str = "35=W|34=2|52=20261123-10:00:00.123|55=EURUSD|268=2|269=0|270=1.08500|271=1000000|269=1|270=1.08510|271=2000000|";

    #[test]
    fn a_snapshot_sets_the_whole_top_of_book() {
        let mut md = md();
        let ticks = run(&mut md, SNAP).unwrap();
        assert_eq!(ticks.len(), 1);
        assert_eq!(
            px(&ticks[0]),
            (
                Some("1.08500".into()),
                Some("1.08510".into()),
                Some("1000000".into()),
                Some("2000000".into())
            )
        );
        // A later snapshot with only a bid clears the ask.
        let ticks = run(
            &mut md,
            "35=W|34=3|52=20261123-10:00:01|55=EURUSD|268=1|269=0|270=1.08490|",
        )
        .unwrap();
        assert_eq!(px(&ticks[0]), (Some("1.08490".into()), None, None, None));
    }

    #[test]
    fn incrementals_change_delete_and_emit_one_tick_per_touched_symbol() {
        let mut md = md();
        run(&mut md, SNAP).unwrap();
        let ticks = run(
            &mut md,
            "35=X|34=3|52=20261123-10:00:00.5|268=3|279=1|269=0|55=EURUSD|270=1.08501|271=3000000|\
             279=0|269=1|55=USDJPY|270=151.230|279=2|269=1|55=EURUSD|",
        )
        .unwrap();
        assert_eq!(ticks.len(), 2, "EURUSD and USDJPY, once each");
        assert!(ticks[0].msg.more_follow() && !ticks[1].msg.more_follow());
        assert_eq!(ticks[1].msg.seq(), 3);
        assert_eq!(ticks[0].symbol, SymbolId(0));
        assert_eq!(
            px(&ticks[0]),
            (Some("1.08501".into()), None, Some("3000000".into()), None)
        );
        assert_eq!(px(&ticks[1]), (None, Some("151.230".into()), None, None));
    }

    #[test]
    fn malformed_messages_are_rejected_whole_and_change_nothing() {
        let mut md = md();
        run(&mut md, SNAP).unwrap();
        let cases = [
            ("35=X|268=1|279=1|269=0|55=EURUSD|270=abc|", "MDEntryPx"),
            ("35=X|268=1|279=1|269=0|55=EURUSD|270=-1.5|", "MDEntryPx"),
            ("35=X|268=1|279=1|269=2|55=EURUSD|270=1.1|", "MDEntryType"),
            ("35=X|268=1|279=1|269=0|55=GBPUSD|270=1.1|", "GBPUSD"),
            ("35=X|268=1|279=1|269=0|270=1.1|", "Symbol"),
            ("35=X|268=2|279=1|269=0|55=EURUSD|270=1.1|", "NoMDEntries"),
            ("35=X|268=1|279=1|269=0|55=EURUSD|", "MDEntryPx"),
            ("35=W|268=1|269=0|270=1.1|", "Symbol"),
            (
                "35=X|268=2|279=1|269=0|55=EURUSD|270=1.2|279=1|269=0|55=EURUSD|270=x|",
                "MDEntryPx",
            ),
        ];
        for (body, why) in cases {
            let err = run(&mut md, body).unwrap_err().to_string();
            assert!(err.contains(why), "{body}: {err}");
        }
        // The book is what the snapshot left.
        let ticks = run(&mut md, "35=X|268=1|279=1|269=1|55=EURUSD|270=1.08520|").unwrap();
        assert_eq!(px(&ticks[0]).0.as_deref(), Some("1.08500"));
    }

    #[test]
    fn sending_time_parses_to_nanoseconds() {
        let t = parse_fix_time(b"20261123-10:00:00.123456789").unwrap();
        assert_eq!(t.to_string(), "2026-11-23T10:00:00.123456789Z");
        let t = parse_fix_time(b"20261123-10:00:00.5").unwrap();
        assert_eq!(t.to_string(), "2026-11-23T10:00:00.500000000Z");
        assert_eq!(
            parse_fix_time(b"20240229-23:59:59").unwrap().to_string(),
            "2024-02-29T23:59:59.000000000Z"
        );
        assert!(parse_fix_time(b"20261323-10:00:00").is_none());
        assert!(parse_fix_time(b"2026112310:00:00").is_none());
        assert!(parse_fix_time(b"20261123-10:00:00.").is_none());
    }

    #[test]
    fn sending_times_outside_the_calendar_or_2000_2100_are_refused() {
        for bad in [
            "99991231-23:59:59.999",
            "00000101-00:00:00",
            "20250231-10:00:00",
            "19991231-23:59:59",
            "21010101-00:00:00",
            "20251301-00:00:00",
            "20250101-24:00:00",
        ] {
            assert_eq!(parse_fix_time(bad.as_bytes()), None, "{bad}");
        }
        assert!(parse_fix_time(b"20240229-10:00:00.123").is_some());
        assert!(parse_fix_time(b"21001231-23:59:60").is_some());
    }

    proptest::proptest! {
        /// Any 52= value: no panic, no overflow; a value it takes is a real instant of
        /// 2000-2100, and exactly the one chrono reads from the same text.
        #[test]
        fn any_sending_time_parses_to_the_instant_chrono_reads_or_is_refused(
            v in proptest::prop_oneof![
                proptest::collection::vec(proptest::num::u8::ANY, 0..30),
                proptest::strategy::Strategy::prop_map(
                    "[0-9]{8}-[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?",
                    String::into_bytes
                ),
            ]
        ) {
            use proptest::{prop_assert, prop_assert_eq};
            let parsed = parse_fix_time(&v);
            let text = String::from_utf8_lossy(&v);
            let reference = chrono::NaiveDateTime::parse_from_str(&text, "%Y%m%d-%H:%M:%S%.f")
                .ok()
                .filter(|t| (2000..=2100).contains(&chrono::Datelike::year(t)) && text.len() >= 17 && (text.len() == 17 || text.as_bytes()[17] == b'.'))
                .and_then(|t| t.and_utc().timestamp_nanos_opt());
            match (parsed, reference) {
                (Some(p), Some(r)) => prop_assert_eq!(p.0, r),
                (Some(p), None) => {
                    // Only a leap second (:60), which chrono refuses, may parse without it.
                    prop_assert!(text.get(15..17) == Some("60"), "{text} -> {p:?}");
                }
                (None, Some(_)) => prop_assert!(false, "refused a valid time: {text}"),
                (None, None) => {}
            }
        }
    }

    proptest::proptest! {
        /// Encode → frame → decode gives back every entry exactly.
        #[test]
        fn encoded_incrementals_decode_to_the_same_entries(
            entries in proptest::collection::vec(
                (0usize..2, proptest::bool::ANY, 0u8..3, 1u64..10_000_000_000, 0u32..=9, proptest::option::of(1u64..100_000_000)),
                1..8,
            ),
            seq in 1u64..1_000_000_000,
        ) {
            use crate::fix::encode::{Header, MessageBuilder};
            let names = ["EURUSD", "USDJPY"];
            let mut b = MessageBuilder::new();
            b.start(&Header { msg_type: "X", sender: "A", target: "B", seq, sending_time: Timestamp(1_795_428_000_123_456_789), poss_dup: None })
                .field_u64(tags::NO_MD_ENTRIES, entries.len() as u64);
            for &(sym, bid, action, mantissa, scale, size) in &entries {
                b.field_u64(tags::MD_UPDATE_ACTION, u64::from(action))
                    .field_str(tags::MD_ENTRY_TYPE, if bid { "0" } else { "1" })
                    .field_str(tags::SYMBOL, names[sym]);
                if action != 2 {
                    b.field_decimal(tags::MD_ENTRY_PX, Decimal::from_parts(mantissa, scale));
                    if let Some(sz) = size {
                        b.field_u64(tags::MD_ENTRY_SIZE, sz);
                    }
                }
            }
            let mut msg = Vec::new();
            b.finish_into(&mut msg);
            proptest::prop_assert_eq!(crate::fix::frame::check(&msg), Ok(msg.len()));
            let mut d = Decoder::new();
            let decoded = d.decode(&msg).unwrap();
            proptest::prop_assert_eq!(decoded.header.seq, seq);
            proptest::prop_assert_eq!(decoded.header.sending_time, Some(Timestamp(1_795_428_000_123_000_000)), "milliseconds on the wire");
            proptest::prop_assert_eq!(decoded.entries.len(), entries.len());
            for (e, &(sym, bid, action, mantissa, scale, size)) in decoded.entries.iter().zip(&entries) {
                proptest::prop_assert_eq!(e.symbol, names[sym].as_bytes());
                proptest::prop_assert_eq!(e.side, if bid { Side::Bid } else { Side::Offer });
                if action == 2 {
                    proptest::prop_assert_eq!(e.action, Action::Delete);
                } else {
                    proptest::prop_assert_eq!(e.action, Action::Set);
                    proptest::prop_assert_eq!(e.price, Some(Decimal::from_parts(mantissa, scale)));
                    proptest::prop_assert_eq!(e.size, size.and_then(Decimal::from_integer));
                }
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut d = Decoder::new();
            if let Ok(m) = d.decode(&bytes) {
                let mut out = Vec::new();
                let _ = md().apply(&m, Timestamp(0), Timestamp(0), &mut out);
            }
        }
    }
}
