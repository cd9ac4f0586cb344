//! FIX tag=value framing: finding whole messages in a byte stream, and walking their fields.
//!
//! Check, then parse: [`check`] answers "is there one complete, well-formed message at the start
//! of this buffer, and how long is it" without allocating; `Incomplete` (read more bytes) is
//! distinct from `Invalid` (these bytes are not a FIX message). Nothing here panics on input.
//!
//! Message layout: `8=FIX.4.4␁9=<body length>␁<body>10=<checksum>␁`, where the body length
//! counts the bytes from after the `9=…␁` field up to and including the `␁` before `10=`, and
//! the checksum is the byte sum of everything before `10=`, modulo 256, as three digits.

/// The field separator (SOH).
pub const SOH: u8 = 0x01;
/// Largest body accepted; market-data messages are far smaller.
pub const MAX_BODY_LEN: usize = 1 << 20;

/// Why no message can be taken from the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not enough bytes yet; read more and ask again.
    #[error("incomplete message")]
    Incomplete,
    /// The bytes at the start are not a valid message.
    #[error("invalid message framing: {0}")]
    Invalid(&'static str),
}

/// Length of the complete message at the start of `buf`, checksum verified.
pub fn check(buf: &[u8]) -> Result<usize, FrameError> {
    // "8=" BeginString "␁"
    let prefix_ok = buf.iter().zip(b"8=").all(|(a, b)| a == b);
    if !prefix_ok {
        return Err(FrameError::Invalid("message does not start with 8="));
    }
    let begin_end = match find_soh(buf, 2, 32) {
        Some(i) => i,
        None if buf.len() < 34 => return Err(FrameError::Incomplete),
        None => return Err(FrameError::Invalid("BeginString too long")),
    };
    // "9=" BodyLength "␁"
    let len_start = begin_end + 1;
    let tag = buf.get(len_start..len_start + 2);
    match tag {
        None => return Err(FrameError::Incomplete),
        Some(t) if t != b"9=" => return Err(FrameError::Invalid("second field is not 9=")),
        Some(_) => {}
    }
    let digits_start = len_start + 2;
    let mut body_len: usize = 0;
    let mut i = digits_start;
    loop {
        match buf.get(i) {
            None => return Err(FrameError::Incomplete),
            Some(&SOH) if i > digits_start => break,
            Some(&d @ b'0'..=b'9') if i - digits_start < 8 => {
                body_len = body_len * 10 + usize::from(d - b'0');
            }
            Some(_) => return Err(FrameError::Invalid("BodyLength is not a number")),
        }
        i += 1;
    }
    if body_len > MAX_BODY_LEN {
        return Err(FrameError::Invalid("BodyLength too large"));
    }
    let body_start = i + 1;
    // MsgType is the third field (FIX): checked once the body is there.
    if buf.len() >= body_start + 3 && &buf[body_start..body_start + 3] != b"35=" {
        return Err(FrameError::Invalid("third field is not 35="));
    }
    let trailer = body_start + body_len;
    let total = trailer + 7; // "10=" + 3 digits + SOH
    if buf.len() < total {
        return Err(FrameError::Incomplete);
    }
    if &buf[trailer..trailer + 3] != b"10=" || buf[total - 1] != SOH {
        return Err(FrameError::Invalid(
            "BodyLength does not end at the 10= trailer",
        ));
    }
    if body_len == 0 || buf[trailer - 1] != SOH {
        return Err(FrameError::Invalid("body does not end with a separator"));
    }
    let mut declared: u32 = 0;
    for &d in &buf[trailer + 3..trailer + 6] {
        if !d.is_ascii_digit() {
            return Err(FrameError::Invalid("CheckSum is not three digits"));
        }
        declared = declared * 10 + u32::from(d - b'0');
    }
    if declared != checksum(&buf[..trailer]) {
        return Err(FrameError::Invalid("CheckSum mismatch"));
    }
    Ok(total)
}

/// The FIX checksum of `bytes`: their sum modulo 256.
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0u32, |acc, &b| acc.wrapping_add(u32::from(b)))
        % 256
}

/// The first SOH of `buf`, eight bytes a step: most values (prices, sizes, names) end within
/// the first step, so the loop's exit no longer mispredicts once per field as a byte loop's
/// did. Framing, decoding and the book of 200,000 two-entry messages (`DECODE_COUNT` in
/// `benches/fix_decode.rs`) under `valgrind --tool=cachegrind --branch-sim=yes`: 18.7M → 14.7M
/// mispredicted branches for 1.073G → 1.100G instructions.
#[inline]
fn find_soh_from(buf: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([SOH; 8]);
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(word) = buf.get(at..at + 8) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        // A byte of `x` is zero where `buf` holds SOH; the lowest flagged byte is exact.
        let x = u64::from_le_bytes(eight) ^ ONES;
        let found = x.wrapping_sub(LOW) & !x & HIGH;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    buf[at..].iter().position(|&b| b == SOH).map(|p| at + p)
}

fn find_soh(buf: &[u8], from: usize, max: usize) -> Option<usize> {
    let end = buf.len().min(from + max);
    buf.get(from..end)?
        .iter()
        .position(|&b| b == SOH)
        .map(|p| from + p)
}

/// Where the next message could start after bytes that failed [`check`] with `Invalid`.
/// A message whose BodyLength is wrong is taken, as FIX engines take it, to run from its start
/// to the first `␁10=nnn␁` at or after where its BodyLength says the body ends (so a length
/// too long swallows what it covers, and the sender's resend recovers it); anything else
/// skips to the next `8=FIX` after position 0, or to the end of what is buffered minus a
/// possible partial match.
pub fn resync(buf: &[u8]) -> usize {
    if let Some(end) = declared_end(buf) {
        return end;
    }
    const MARK: &[u8] = b"8=FIX";
    match buf.windows(MARK.len()).skip(1).position(|w| w == MARK) {
        Some(p) => p + 1,
        None => buf
            .len()
            .saturating_sub(MARK.len() - 1)
            .max(1)
            .min(buf.len()),
    }
}

/// The end of the first `␁10=nnn␁` at or after the body end that the BodyLength at the start
/// of `buf` declares, when the header reads and that trailer is buffered.
fn declared_end(buf: &[u8]) -> Option<usize> {
    if !buf.starts_with(b"8=") {
        return None;
    }
    let begin_end = find_soh(buf, 2, 32)?;
    let len_start = begin_end + 1;
    if buf.get(len_start..len_start + 2)? != b"9=" {
        return None;
    }
    let digits_start = len_start + 2;
    let len_end = find_soh(buf, digits_start, 9)?;
    let digits = &buf[digits_start..len_end];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let body_len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if body_len > MAX_BODY_LEN {
        return None;
    }
    let from = (len_end + body_len).min(buf.len());
    let at = buf[from..].windows(4).position(|w| w == b"\x0110=")? + from;
    let tail = buf.get(at + 4..at + 8)?;
    (tail[..3].iter().all(u8::is_ascii_digit) && tail[3] == SOH).then_some(at + 8)
}

/// A malformed field inside a framed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed field at byte {offset}")]
pub struct FieldSyntaxError {
    pub offset: usize,
}

/// Iterator over `(tag, value)` of a framed message, borrowing the values.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub fn new(msg: &'a [u8]) -> Fields<'a> {
        Fields { buf: msg, pos: 0 }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, &'a [u8]), FieldSyntaxError>;

    // Always: with its four tag widths unrolled, fat LTO left it out of line in the recorder,
    // a call a field: the gateway's CPU a committed tick in `bench`'s end to end rose by 30 ns
    // where it was to fall (`tools/thread-cpu.py`, three runs a side, alternating). Inlined,
    // against the build before both this and the word-at-a-time decimals, six runs a side,
    // alternating: 441–563 ns (median 557) → 414–518 ns (median 514).
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let bad = |s: &mut Self| {
            s.pos = s.buf.len();
            Some(Err(FieldSyntaxError { offset: start }))
        };
        // Tags of one to four digits (all of FIX 4.4's) without a loop; longer ones a byte at
        // a time. A byte is a digit when its distance from '0' is below 10. Against the loop
        // alone, in the `DECODE_COUNT` count of `benches/fix_decode.rs`: under cachegrind
        // 0.959G → 0.915G instructions, 12.05M → 10.65M mispredicted branches; 3M messages
        // timed, two series of eight runs a side, alternating: medians 310 → 293 and 327 → 299
        // ns a message. (One 8-byte word a tag, with multiplications, had cost more:
        // `data/performance-log.md`, "Measured after run 54".)
        let d = |b: &u8| b.wrapping_sub(b'0');
        let n = |b: &u8| u32::from(d(b));
        let (tag, width, digits) = match &self.buf[start..] {
            [a, b'=', ..] => (n(a), 1, d(a) < 10),
            [a, b, b'=', ..] => (n(a) * 10 + n(b), 2, d(a).max(d(b)) < 10),
            [a, b, c, b'=', ..] => (
                n(a) * 100 + n(b) * 10 + n(c),
                3,
                d(a).max(d(b)).max(d(c)) < 10,
            ),
            [a, b, c, e, b'=', ..] => (
                n(a) * 1000 + n(b) * 100 + n(c) * 10 + n(e),
                4,
                d(a).max(d(b)).max(d(c)).max(d(e)) < 10,
            ),
            _ => {
                let mut tag: u32 = 0;
                let mut i = start;
                loop {
                    match self.buf.get(i) {
                        Some(&b'=') if i > start => break,
                        Some(&d @ b'0'..=b'9') if i - start < 9 => {
                            tag = tag * 10 + u32::from(d - b'0')
                        }
                        _ => return bad(self),
                    }
                    i += 1;
                }
                (tag, i - start, true)
            }
        };
        if !digits {
            return bad(self);
        }
        let value_start = start + width + 1;
        let Some(len) = find_soh_from(&self.buf[value_start..]) else {
            return bad(self);
        };
        self.pos = value_start + len + 1;
        Some(Ok((tag, &self.buf[value_start..value_start + len])))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds a framed message from `|`-separated body fields.
    pub(crate) fn frame(body: &str) -> Vec<u8> {
        let body = body.replace('|', "\x01");
        let mut m = format!("8=FIX.4.4\x019={}\x01{}", body.len(), body).into_bytes();
        let sum = checksum(&m);
        m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        m
    }

    #[test]
    fn a_whole_message_is_found_and_its_fields_walked() {
        let m = frame("35=0|34=2|49=A|56=B|52=20261123-10:00:00.000|");
        assert_eq!(check(&m), Ok(m.len()));
        let fields: Vec<(u32, Vec<u8>)> = Fields::new(&m)
            .map(|f| f.map(|(t, v)| (t, v.to_vec())).unwrap())
            .collect();
        assert_eq!(fields[0], (8, b"FIX.4.4".to_vec()));
        assert_eq!(fields[2], (35, b"0".to_vec()));
        assert_eq!(fields.last().unwrap().0, 10);
    }

    #[test]
    fn every_prefix_is_incomplete_and_never_invalid() {
        let m = frame("35=0|34=2|49=A|56=B|");
        for n in 0..m.len() {
            assert_eq!(check(&m[..n]), Err(FrameError::Incomplete), "prefix {n}");
        }
    }

    #[test]
    fn corruption_is_invalid() {
        let m = frame("35=0|34=2|");
        let mut bad_sum = m.clone();
        let n = bad_sum.len();
        bad_sum[n - 2] = if bad_sum[n - 2] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            check(&bad_sum),
            Err(FrameError::Invalid("CheckSum mismatch"))
        );
        assert!(matches!(
            check(b"9=5\x0135=0\x01"),
            Err(FrameError::Invalid(_))
        ));
        let mut bad_len = frame("35=0|34=2|");
        bad_len[12] = b'9'; // 9=10 -> 9=19...
        assert!(check(&bad_len).is_err());
        assert!(matches!(
            check(b"8=FIX.4.4\x019=abc\x01"),
            Err(FrameError::Invalid(_))
        ));
    }

    #[test]
    fn a_wrong_body_length_runs_to_the_next_trailer_after_it() {
        /// `frame(body)` with its BodyLength replaced by `len`.
        fn with_len(body: &str, len: usize) -> Vec<u8> {
            let body = body.replace('|', "\x01");
            let mut m = format!("8=FIX.4.4\x019={len}\x01{body}").into_bytes();
            let sum = checksum(&m);
            m.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
            m
        }
        let good = frame("35=0|34=3|");
        // Too short: the message's own trailer ends it.
        let short = with_len("35=0|34=2|58=abcdefgh|", 10);
        let mut stream = short.clone();
        stream.extend_from_slice(&good);
        assert!(matches!(check(&stream), Err(FrameError::Invalid(_))));
        assert_eq!(resync(&stream), short.len());
        // Too long: it runs into the next message and ends at that one's trailer.
        let long = with_len("35=0|34=2|", 30);
        let mut stream = long.clone();
        stream.extend_from_slice(&good);
        stream.extend_from_slice(&good);
        assert!(matches!(check(&stream), Err(FrameError::Invalid(_))));
        assert_eq!(resync(&stream), long.len() + good.len());
    }

    #[test]
    fn resync_skips_to_the_next_message() {
        let mut stream = b"garbage".to_vec();
        let m = frame("35=0|");
        stream.extend_from_slice(&m);
        let skip = resync(&stream);
        assert_eq!(&stream[skip..], &m[..]);
    }

    #[test]
    fn the_separator_search_finds_the_first_soh_whatever_surrounds_it() {
        for len in 0..20 {
            for filler in [0x00u8, 0x02, 0x30, 0x80, 0x81, 0xfe, 0xff] {
                let none = vec![filler; len];
                assert_eq!(find_soh_from(&none), None, "{len} bytes of {filler:#x}");
                for at in 0..len {
                    let mut buf = none.clone();
                    buf[at] = SOH;
                    if at + 3 < len {
                        buf[at + 3] = SOH;
                    }
                    assert_eq!(find_soh_from(&buf), Some(at), "{len} bytes, {filler:#x}");
                }
            }
        }
    }

    proptest! {
        /// Any split of a byte stream into reads yields the same messages.
        #[test]
        fn any_split_of_the_stream_yields_the_same_messages(
            bodies in proptest::collection::vec("[A-Za-z0-9.:-]{1,20}", 1..20),
            cuts in proptest::collection::vec(0usize..2000, 0..30),
        ) {
            let msgs: Vec<Vec<u8>> = bodies.iter().enumerate()
                .map(|(i, b)| frame(&format!("35=X|34={}|58={b}|", i + 1)))
                .collect();
            let stream: Vec<u8> = msgs.concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.push(stream.len());
            cuts.sort_unstable();
            let mut buf = Vec::new();
            let mut got = Vec::new();
            let mut last = 0;
            for c in cuts {
                buf.extend_from_slice(&stream[last..c]);
                last = c;
                loop {
                    match check(&buf) {
                        Ok(n) => { got.push(buf[..n].to_vec()); buf.drain(..n); }
                        Err(FrameError::Incomplete) => break,
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
            }
            prop_assert_eq!(got, msgs);
        }

        #[test]
        fn check_and_fields_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = check(&bytes);
            let _ = resync(&bytes);
            for f in Fields::new(&bytes) { let _ = f; }
        }
    }
}
