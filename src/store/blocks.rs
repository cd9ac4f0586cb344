//! Symbol blocks: one symbol's ticks of one directory row, packed in one `blocks` row, so that
//! a query of one symbol reads a handful of pages instead of one page per run of its ticks.
//!
//! A live day interleaves every symbol's ticks in `seq` order: one symbol's hour of a
//! 128-symbol, 10M-tick day is ~3,300 ticks on ~800 pages, and SQLite drops a reader's page
//! cache at every new snapshot, so while the writer commits, every query reads its pages
//! again. The writer therefore also writes, with each directory row and in the same
//! transaction, one block per symbol the row holds: that symbol's ticks of those commits, in
//! `seq` order, keyed by the `seq` of its first one. An hour is then ~50 blocks.
//!
//! Blocks are a second copy, never the record: the `ticks` rows are. A reader uses a block
//! only when its check holds and it decodes to exactly the number of ticks the directory
//! row's runs give the symbol; otherwise it reads the rows (files from before version 8,
//! salvaged or sealed-and-packed spans have no blocks). `tickrec check` compares every block
//! with its rows.
//!
//! Layout of `data`: the tick count, the ticks, then a 4-byte check (XXH3 seeded with the key); per
//! tick, all varints (`zz` = zigzag):
//! zz(ts_event - previous ts_event), zz(ts_recv), a shape byte (bits 0-3: bid, ask, bid_size,
//! ask_size present; bit 4: the source differs from the previous tick's), then
//! zz(bid - previous bid), zz(ask), zz(bid_size - previous), zz(ask_size - previous) for those
//! present, then the source id when bit 4 is set. Values are the `ticks` row's integers;
//! "previous" starts at 0 and skips absent values.
//!
//! Invariant: a block keyed `k` holds exactly the ticks of one symbol whose runs in one
//! directory row start at `k`, in `seq` order (written by `writer::record_directory`, verified
//! by `store::check`).

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

/// A block that does not decode (a damaged file: readers read the rows instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undecodable;

fn zz(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzz(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

use super::directory::push_var as put;

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
        put(b, zz(row.ts_event.wrapping_sub(self.prev_ts)));
        self.prev_ts = row.ts_event;
        put(b, zz(row.ts_recv));
        let vals = [row.bid, row.ask, row.bid_size, row.ask_size];
        let mut shape = 0u8;
        for (i, v) in vals.iter().enumerate() {
            if v.is_some() {
                shape |= 1 << i;
            }
        }
        if row.src != self.prev_src {
            shape |= 1 << 4;
        }
        b.push(shape);
        for (i, v) in vals.into_iter().enumerate() {
            if let Some(v) = v {
                if i == 1 {
                    // The stored ask is usually the spread already: small as it is.
                    put(b, zz(v));
                } else {
                    put(b, zz(v.wrapping_sub(self.prev[i])));
                    self.prev[i] = v;
                }
            }
        }
        if row.src != self.prev_src {
            put(b, row.src as u64);
            self.prev_src = row.src;
        }
    }

    /// The block's `data`: the count, the ticks, the check.
    pub fn data(&self, out: &mut Vec<u8>) {
        out.clear();
        put(out, self.count);
        out.extend_from_slice(&self.body);
        let check = checksum(self.first_seq, out);
        out.extend_from_slice(&check.to_le_bytes());
    }
}

fn get(data: &[u8], at: &mut usize) -> Result<u64, Undecodable> {
    super::directory::read_var(data, at).map_err(|_| Undecodable)
}

/// The low 32 bits of XXH3, seeded with the block's key, over the count and the ticks: a block
/// damaged in any way, or found under another key, is passed over, not read (SQLite keeps no
/// checksum of its pages). 0.1 us for a 1 KB block.
fn checksum(key: i64, bytes: &[u8]) -> u32 {
    twox_hash::XxHash3_64::oneshot_with_seed(key as u64, bytes) as u32
}

/// The count and ticks of `data`, the block keyed `key`, once its check holds.
fn checked(key: i64, data: &[u8]) -> Result<&[u8], Undecodable> {
    let split = data.len().checked_sub(4).ok_or(Undecodable)?;
    let (body, check) = data.split_at(split);
    let check = u32::from_le_bytes(check.try_into().map_err(|_| Undecodable)?);
    if checksum(key, body) != check {
        return Err(Undecodable);
    }
    Ok(body)
}

/// How many ticks the block keyed `key` says it holds (before decoding them).
pub fn count(key: i64, data: &[u8]) -> Result<u64, Undecodable> {
    get(checked(key, data)?, &mut 0)
}

/// Decodes every tick of the block keyed `key` into `out` (cleared first); the whole block or
/// nothing.
pub fn decode(key: i64, data: &[u8], out: &mut Vec<Row>) -> Result<(), Undecodable> {
    out.clear();
    let data = checked(key, data)?;
    let mut at = 0usize;
    let n = get(data, &mut at)?;
    // Every tick takes at least three bytes: a count past that is a damaged block.
    if n > (data.len() as u64) / 3 + 1 {
        return Err(Undecodable);
    }
    out.reserve(n as usize);
    let (mut prev, mut ts, mut src) = ([0i64; 4], 0i64, 0i64);
    for _ in 0..n {
        ts = ts.wrapping_add(unzz(get(data, &mut at)?));
        let recv = unzz(get(data, &mut at)?);
        let shape = *data.get(at).ok_or(Undecodable)?;
        at += 1;
        if shape >> 5 != 0 {
            return Err(Undecodable);
        }
        let mut vals = [None; 4];
        for (i, v) in vals.iter_mut().enumerate() {
            if shape >> i & 1 != 0 {
                let d = unzz(get(data, &mut at)?);
                *v = Some(if i == 1 {
                    d
                } else {
                    prev[i] = prev[i].wrapping_add(d);
                    prev[i]
                });
            }
        }
        if shape & 1 << 4 != 0 {
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
            .prop_map(
                |(ts_event, ts_recv, bid, ask, bid_size, ask_size, src)| Row {
                    ts_event,
                    ts_recv,
                    bid,
                    ask,
                    bid_size,
                    ask_size,
                    src,
                },
            )
    }

    proptest! {
        #[test]
        fn a_block_decodes_to_the_rows_it_was_built_from(rows in proptest::collection::vec(row(), 1..200), first in 1i64..1 << 40) {
            let mut b = Builder::default();
            for (i, r) in rows.iter().enumerate() {
                b.push(first + i as i64, r);
            }
            prop_assert_eq!(b.first_seq, first);
            let mut data = Vec::new();
            b.data(&mut data);
            prop_assert_eq!(count(first, &data), Ok(rows.len() as u64));
            prop_assert_eq!(count(first + 1, &data), Err(Undecodable));
            let mut back = Vec::new();
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
