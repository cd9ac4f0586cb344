//! Symbol blocks: one symbol's ticks of one directory row, packed in one block, so that
//! a query of one symbol reads a handful of pages instead of one page per run of its ticks.
//!
//! A live day interleaves every symbol's ticks in `seq` order: one symbol's hour of a
//! 128-symbol, 10M-tick day is ~3,300 ticks on ~800 pages, and SQLite drops a reader's page
//! cache at every new snapshot, so while the writer commits, every query reads its pages
//! again. Each directory row's commits therefore also get one block per symbol the row holds:
//! that symbol's ticks of those commits, in `seq` order, keyed by the `seq` of its first one,
//! written beside the day file by the block builder (`store::blockfile`). An hour is then ~50
//! blocks.
//!
//! Blocks are a second copy, never the record: the `ticks` rows are. A reader uses a block
//! only when its check holds and it decodes to exactly the number of ticks the directory
//! row's runs give the symbol; otherwise it reads the rows (files from before version 8,
//! salvaged or sealed-and-packed spans have no blocks). `tickrec check` compares every block
//! with its rows.
//!
//! Layout of `data`: the tick count, the ticks, then a 4-byte check (XXH3 seeded with the key); per
//! tick, all varints (`zz` = zigzag): ts_event - previous ts_event and ts_recv, each in the
//! unit it is a whole number of (ns, us or ms: `put_time`), a shape
//! byte (bits 0-3: bid, ask, bid_size, ask_size present; bits 4-7: see `SRC` and the flags
//! after it), then per present value its step from the previous one (for a packed decimal
//! whose k is the previous one's, the step of the mantissa: one byte for a price that moved a
//! few points, not two), the ask as it is stored (a spread without its four zero bits), then
//! the source id when it changed. Values are the `ticks` row's integers; "previous" starts at 0
//! and skips absent values. On the bench's day (random nanosecond times) blocks take 13.6 bytes
//! a tick, 18.2 before the mantissa steps, the bare spread and the time units (`tickrec bench
//! --only queries` with blocks on: live bytes/tick 50.0, against 36.4 without).
//!
//! Invariant: a block keyed `k` holds exactly the ticks of one symbol whose runs in one
//! directory row start at `k`, in `seq` order (written by `store::blockfile`'s builder from
//! what `writer::insert_all` hands it, verified by `store::check`).

/// The integers of one `ticks` row (day-relative `ts_event`, `ts_recv` as stored, packed
/// decimals, file ids), as the writer binds them and a reader decodes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub ts_event: i64,
    pub ts_recv: i64,
    pub bid: Option<i64>,
    pub ask: Option<i64>,
    pub bid_size: Option<i64>,
    pub ask_size: Option<i64>,
    pub src: i64,
}

/// Shape bits past the four of the present values: the source changed; the bid is a mantissa
/// step (its k is the previous bid's); the ask is a spread (`Decimal::stored_ask`'s distance
/// form, low bits 0) stored without its zero bits; every size present is a mantissa step.
const SRC: u8 = 1 << 4;
const BID_SAME_K: u8 = 1 << 5;
const ASK_SPREAD: u8 = 1 << 6;
const SIZES_SAME_K: u8 = 1 << 7;

/// A block that does not decode (a damaged file: readers read the rows instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecodable;

/// Zigzag: small magnitudes of either sign as small varints.
pub(super) fn zz(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzz(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

use super::directory::push_var as put;

/// Appends a nanosecond count in the unit it is a whole number of: `zz(v / unit) << 2 | tag`,
/// tag 0 ns, 1 us, 2 ms; tag 3 alone, then `zz(v)`, for a count in ns too large to shift. A
/// feed stamped in us or ms spends a byte or two less per time than in ns.
fn put_time(out: &mut Vec<u8>, v: i64) {
    let (tag, unit) = match v {
        _ if v % 1_000_000 == 0 => (2, 1_000_000),
        _ if v % 1_000 == 0 => (1, 1_000),
        _ => (0, 1),
    };
    let z = zz(v / unit);
    if z >> 62 == 0 {
        put(out, z << 2 | tag);
    } else {
        put(out, 3);
        put(out, zz(v));
    }
}

/// The inverse of [`put_time`].
fn get_time(data: &[u8], at: &mut usize) -> Result<i64, Undecodable> {
    let d = get(data, at)?;
    let v = unzz(d >> 2);
    Ok(match d & 3 {
        0 => v,
        1 => v.wrapping_mul(1_000),
        2 => v.wrapping_mul(1_000_000),
        _ if d >> 2 == 0 => unzz(get(data, at)?),
        _ => return Err(Undecodable),
    })
}

/// One symbol's block being built by the writer.
#[derive(Debug, Default, Clone)]
pub struct Builder {
    /// `seq` of the first tick (the block's key).
    pub first_seq: i64,
    pub count: u64,
    prev: [i64; 4],
    prev_ts: i64,
    prev_src: i64,
    body: Vec<u8>,
}

impl Builder {
    /// Empties the builder (its buffer is kept for reuse).
    pub fn clear(&mut self) {
        self.count = 0;
        self.prev = [0; 4];
        self.prev_ts = 0;
        self.prev_src = 0;
        self.body.clear();
    }

    /// Appends the tick at `seq` (the first one sets the key).
    pub fn push(&mut self, seq: i64, row: &Row) {
        if self.count == 0 {
            self.first_seq = seq;
        }
        self.count += 1;
        let b = &mut self.body;
        put_time(b, row.ts_event.wrapping_sub(self.prev_ts));
        self.prev_ts = row.ts_event;
        put_time(b, row.ts_recv);
        let vals = [row.bid, row.ask, row.bid_size, row.ask_size];
        let mut shape = 0u8;
        for (i, v) in vals.iter().enumerate() {
            if v.is_some() {
                shape |= 1 << i;
            }
        }
        if row.src != self.prev_src {
            shape |= SRC;
        }
        let same_k = |v: Option<i64>, prev: i64| v.is_none_or(|v| v & 15 == prev & 15);
        if row.bid.is_some() && same_k(row.bid, self.prev[0]) {
            shape |= BID_SAME_K;
        }
        if row.ask.is_some_and(|a| a & 15 == 0) {
            shape |= ASK_SPREAD;
        }
        if same_k(row.bid_size, self.prev[2]) && same_k(row.ask_size, self.prev[3]) {
            shape |= SIZES_SAME_K;
        }
        b.push(shape);
        for (i, v) in vals.into_iter().enumerate() {
            let Some(v) = v else { continue };
            let packed = match i {
                1 if shape & ASK_SPREAD != 0 => zz(v >> 4),
                1 => zz(v),
                0 if shape & BID_SAME_K != 0 => zz((v >> 4).wrapping_sub(self.prev[0] >> 4)),
                2 | 3 if shape & SIZES_SAME_K != 0 => zz((v >> 4).wrapping_sub(self.prev[i] >> 4)),
                _ => zz(v.wrapping_sub(self.prev[i])),
            };
            put(b, packed);
            self.prev[i] = v;
        }
        if row.src != self.prev_src {
            put(b, row.src as u64);
            self.prev_src = row.src;
        }
    }

    /// The block's `data` as the `blocks` table of earlier versions holds it: the count, the
    /// ticks, the check seeded with the key (what [`decode`] reads; only tests write it now).
    #[cfg(test)]
    pub fn data(&self, out: &mut Vec<u8>) {
        self.data_seeded(self.first_seq as u64, out);
    }

    /// The same, the check seeded with `seed` (a block file's: [`runs_seed`]).
    pub fn data_seeded(&self, seed: u64, out: &mut Vec<u8>) {
        out.clear();
        put(out, self.count);
        out.extend_from_slice(&self.body);
        let check = checksum(seed, out);
        out.extend_from_slice(&check.to_le_bytes());
    }
}

fn get(data: &[u8], at: &mut usize) -> Result<u64, Undecodable> {
    super::directory::read_var(data, at).map_err(|_| Undecodable)
}

/// The low 32 bits of XXH3, seeded with the block's key, over the count and the ticks: a block
/// damaged in any way, or found under another key, is passed over, not read (SQLite keeps no
/// checksum of its pages). 0.1 us for a 1 KB block.
fn checksum(seed: u64, bytes: &[u8]) -> u32 {
    twox_hash::XxHash3_64::oneshot_with_seed(seed, bytes) as u32
}

/// The seed of a block file's check: XXH3 of its symbol's runs `(first seq, length)` in the
/// directory row, little-endian. A block checks only against the very `seq`s it was built
/// for: a directory rewritten since (a salvage, a seal covering what had no row) that gives
/// the symbol other runs from the same key finds no block, and reads the rows.
pub fn runs_seed(runs: &[(i64, i64)]) -> u64 {
    let mut bytes = Vec::with_capacity(runs.len() * 16);
    for &(a, n) in runs {
        bytes.extend_from_slice(&a.to_le_bytes());
        bytes.extend_from_slice(&n.to_le_bytes());
    }
    twox_hash::XxHash3_64::oneshot(&bytes)
}

/// The count and ticks of `data`, a block whose check is seeded with `seed`, once it holds.
fn checked(seed: u64, data: &[u8]) -> Result<&[u8], Undecodable> {
    let split = data.len().checked_sub(4).ok_or(Undecodable)?;
    let (body, check) = data.split_at(split);
    let check = u32::from_le_bytes(check.try_into().map_err(|_| Undecodable)?);
    if checksum(seed, body) != check {
        return Err(Undecodable);
    }
    Ok(body)
}

/// Decodes every tick of the block keyed `key` into `out` (cleared first); the whole block or
/// nothing.
pub fn decode(key: i64, data: &[u8], out: &mut Vec<Row>) -> Result<(), Undecodable> {
    decode_seeded(key as u64, data, out)
}

/// [`decode`] of a block whose check is seeded with `seed` (a block file's: [`runs_seed`]).
pub fn decode_seeded(seed: u64, data: &[u8], out: &mut Vec<Row>) -> Result<(), Undecodable> {
    out.clear();
    let data = checked(seed, data)?;
    let mut at = 0usize;
    let n = get(data, &mut at)?;
    // Every tick takes at least three bytes: a count past that is a damaged block.
    if n > (data.len() as u64) / 3 + 1 {
        return Err(Undecodable);
    }
    out.reserve(n as usize);
    let (mut prev, mut ts, mut src) = ([0i64; 4], 0i64, 0i64);
    for _ in 0..n {
        ts = ts.wrapping_add(get_time(data, &mut at)?);
        let recv = get_time(data, &mut at)?;
        let shape = *data.get(at).ok_or(Undecodable)?;
        at += 1;
        let mut vals = [None; 4];
        for (i, v) in vals.iter_mut().enumerate() {
            if shape >> i & 1 == 0 {
                continue;
            }
            let d = unzz(get(data, &mut at)?);
            // The inverse of Builder::push: a mantissa step keeps the previous value's k.
            let step = |p: i64| (p >> 4).wrapping_add(d).wrapping_shl(4) | (p & 15);
            let value = match i {
                1 if shape & ASK_SPREAD != 0 => d.wrapping_shl(4),
                1 => d,
                0 if shape & BID_SAME_K != 0 => step(prev[0]),
                2 | 3 if shape & SIZES_SAME_K != 0 => step(prev[i]),
                _ => prev[i].wrapping_add(d),
            };
            prev[i] = value;
            *v = Some(value);
        }
        if shape & SRC != 0 {
            src = i64::try_from(get(data, &mut at)?).map_err(|_| Undecodable)?;
        }
        out.push(Row {
            ts_event: ts,
            ts_recv: recv,
            bid: vals[0],
            ask: vals[1],
            bid_size: vals[2],
            ask_size: vals[3],
            src,
        });
    }
    if at != data.len() {
        return Err(Undecodable);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Values = (
        i64,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        i64,
    );

    fn row_of((ts_event, ts_recv, bid, ask, bid_size, ask_size, src): Values) -> Row {
        Row {
            ts_event,
            ts_recv,
            bid,
            ask,
            bid_size,
            ask_size,
            src,
        }
    }

    fn row() -> impl Strategy<Value = Row> {
        (
            any::<i64>(),
            any::<i64>(),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            0i64..1 << 40,
        )
            .prop_map(row_of)
    }

    /// Rows like a feed's: packed decimals with few k values (mantissa steps, bare spreads)
    /// beside wild ones.
    fn quote() -> impl Strategy<Value = Row> {
        let code = prop_oneof![
            (-2000i64..2000, 0i64..3).prop_map(|(m, k)| (m << 4) | (k * 5 + 1)),
            any::<i64>(),
        ];
        let spread = prop_oneof![(0i64..40).prop_map(|s| s << 4), any::<i64>()];
        // Times as feeds stamp them: in ns, us or ms.
        let time = |max: i64| {
            prop_oneof![
                -max..max,
                (-max / 1_000..max / 1_000).prop_map(|t| t * 1_000),
                (-max / 1_000_000..max / 1_000_000).prop_map(|t| t * 1_000_000),
            ]
        };
        (
            time(86_400_000_000_000),
            time(300_000_000),
            proptest::option::of(code.clone()),
            proptest::option::of(spread),
            proptest::option::of(code.clone()),
            proptest::option::of(code),
            0i64..3,
        )
            .prop_map(row_of)
    }

    proptest! {
        #[test]
        fn a_block_of_quotes_decodes_to_them(rows in proptest::collection::vec(quote(), 1..300)) {
            let mut b = Builder::default();
            for (i, r) in rows.iter().enumerate() {
                b.push(1 + i as i64, r);
            }
            let mut data = Vec::new();
            b.data(&mut data);
            let mut back = Vec::new();
            decode(1, &data, &mut back).unwrap();
            prop_assert_eq!(back, rows);
        }

        #[test]
        fn a_block_decodes_to_the_rows_it_was_built_from(rows in proptest::collection::vec(row(), 1..200), first in 1i64..1 << 40) {
            let mut b = Builder::default();
            for (i, r) in rows.iter().enumerate() {
                b.push(first + i as i64, r);
            }
            prop_assert_eq!(b.first_seq, first);
            let mut data = Vec::new();
            b.data(&mut data);
            let mut back = Vec::new();
            prop_assert_eq!(decode(first + 1, &data, &mut back), Err(Undecodable));
            decode(first, &data, &mut back).unwrap();
            prop_assert_eq!(back, rows);
        }

        #[test]
        fn damaged_data_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut out = Vec::new();
            let _ = decode(1, &data, &mut out);
        }
    }

    #[test]
    fn a_block_cut_moved_or_flipped_is_undecodable() {
        let mut b = Builder::default();
        let r = Row {
            ts_event: 36_000_000_000_000,
            ts_recv: 120_000,
            bid: Some(1_736_037),
            ask: Some(192),
            bid_size: Some(175),
            ask_size: None,
            src: 1,
        };
        b.push(7, &r);
        b.push(8, &r);
        let mut data = Vec::new();
        b.data(&mut data);
        let mut out = Vec::new();
        assert_eq!(
            decode(7, &data[..data.len() - 1], &mut out),
            Err(Undecodable)
        );
        let mut longer = data.clone();
        longer.push(0);
        assert_eq!(decode(7, &longer, &mut out), Err(Undecodable));
        assert_eq!(decode(8, &data, &mut out), Err(Undecodable), "another key");
        decode(7, &data, &mut out).unwrap();
        assert_eq!(out, vec![r, r]);
        for i in 0..data.len() {
            let mut flipped = data.clone();
            flipped[i] ^= 0x10;
            assert_eq!(decode(7, &flipped, &mut out), Err(Undecodable), "byte {i}");
        }
    }
}
