//! Synthetic FX quotes: seeded random walks over real-looking pairs, majors first.
//!
//! Used by the demo, the bench and the FIX simulator, so that every figure in this project is
//! measured on the same kind of data: 5-decimal prices (3 for JPY pairs), a spread of a few
//! pips, sizes in round millions, and an occasional cleared side.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::tick::{Decimal, MsgRef, Price, Size, SourceId, SymbolId, Tick, Timestamp};

/// Pairs in the order they are handed out: majors, then crosses, then others.
const PAIRS: &[(&str, u64)] = &[
    ("EURUSD", 108_500),
    ("GBPUSD", 126_800),
    ("USDJPY", 151_230),
    ("AUDUSD", 65_400),
    ("USDCAD", 137_200),
    ("USDCHF", 88_100),
    ("NZDUSD", 59_700),
    ("EURGBP", 85_600),
    ("EURJPY", 164_100),
    ("GBPJPY", 191_700),
    ("EURCHF", 95_600),
    ("AUDJPY", 98_900),
    ("EURAUD", 165_900),
    ("EURCAD", 148_900),
    ("GBPCHF", 111_700),
    ("CADJPY", 110_200),
    ("AUDNZD", 109_500),
    ("GBPAUD", 193_800),
    ("CHFJPY", 171_600),
    ("NZDJPY", 90_300),
    ("AUDCAD", 89_700),
    ("GBPCAD", 173_900),
    ("EURNZD", 181_700),
    ("AUDCHF", 57_600),
    ("GBPNZD", 212_300),
    ("CADCHF", 64_200),
    ("NZDCAD", 81_900),
    ("NZDCHF", 52_600),
    ("USDSEK", 1_052_300),
    ("USDNOK", 1_078_400),
    ("USDMXN", 1_712_500),
    ("USDZAR", 1_843_200),
];

/// `n` symbol names: the pairs above, then numbered synthetic instruments (`SYN0033`, …).
pub fn symbol_names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match PAIRS.get(i) {
            Some((name, _)) => (*name).to_owned(),
            None => format!("SYN{i:04}"),
        })
        .collect()
}

/// Top of book of one instrument as the walk stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    pub bid: Option<Price>,
    pub ask: Option<Price>,
    pub bid_size: Option<Size>,
    pub ask_size: Option<Size>,
}

impl Quote {
    /// This quote as a tick of `symbol` from `source` (no FIX message behind it).
    pub fn tick(
        self,
        symbol: SymbolId,
        source: SourceId,
        ts_event: Timestamp,
        ts_recv: Timestamp,
    ) -> Tick {
        Tick {
            symbol,
            source,
            ts_event,
            ts_recv,
            bid: self.bid,
            ask: self.ask,
            bid_size: self.bid_size,
            ask_size: self.ask_size,
            msg: MsgRef::NONE,
        }
    }
}

/// One instrument's random walk.
#[derive(Debug, Clone)]
struct Walk {
    /// Mid in price units of `scale` decimals.
    mid: u64,
    scale: u32,
}

/// Independent random walks for a set of symbols.
#[derive(Debug, Clone)]
pub struct QuoteGen {
    rng: SmallRng,
    walks: Vec<Walk>,
    /// Probability that a side is cleared in an update (exercises absent sides).
    clear_prob: f64,
}

impl QuoteGen {
    /// Walks for the first `n` symbols of [`symbol_names`], reproducible from `seed`.
    pub fn new(n: usize, seed: u64) -> QuoteGen {
        let walks = (0..n)
            .map(|i| {
                let (mid, jpy_like) = match PAIRS.get(i) {
                    Some((name, mid)) => (*mid, name.ends_with("JPY")),
                    None => (100_000 + (i as u64 * 7_919) % 900_000, false),
                };
                // JPY pairs quote 3 decimals (151.230), the rest 5 (1.08500).
                Walk {
                    mid,
                    scale: if jpy_like { 3 } else { 5 },
                }
            })
            .collect();
        QuoteGen {
            rng: SmallRng::seed_from_u64(seed),
            walks,
            clear_prob: 0.002,
        }
    }

    pub fn len(&self) -> usize {
        self.walks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.walks.is_empty()
    }

    /// Sets how often a side is absent (0 for always two-sided quotes).
    pub fn with_clear_probability(mut self, p: f64) -> QuoteGen {
        self.clear_prob = p;
        self
    }

    /// A uniformly random symbol index.
    pub fn pick(&mut self) -> usize {
        self.rng.gen_range(0..self.walks.len())
    }

    /// Moves symbol `i` one step and returns its new top of book.
    pub fn next_quote(&mut self, i: usize) -> Quote {
        let clear_prob = self.clear_prob;
        let rng = &mut self.rng;
        let w = &mut self.walks[i];
        let step: i64 = rng.gen_range(-3..=3);
        w.mid = w.mid.saturating_add_signed(step).max(100);
        let half_spread = rng.gen_range(1..=4);
        let size = |rng: &mut SmallRng| Decimal::from_integer(rng.gen_range(1..=10) * 1_000_000);
        let bid = Decimal::from_parts(w.mid - half_spread, w.scale);
        let ask = Decimal::from_parts(w.mid + half_spread, w.scale);
        let (bid_size, ask_size) = (size(rng), size(rng));
        let keep_bid = !rng.gen_bool(clear_prob);
        let keep_ask = !rng.gen_bool(clear_prob);
        Quote {
            bid: keep_bid.then_some(bid),
            ask: keep_ask.then_some(ask),
            bid_size: bid_size.filter(|_| keep_bid),
            ask_size: ask_size.filter(|_| keep_ask),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_come_first_and_names_are_unique() {
        let names = symbol_names(40);
        assert_eq!(&names[..4], ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD"]);
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 40);
    }

    #[test]
    fn quotes_look_like_fx_and_are_reproducible() {
        let mut a = QuoteGen::new(3, 7).with_clear_probability(0.0);
        let mut b = QuoteGen::new(3, 7).with_clear_probability(0.0);
        for _ in 0..100 {
            let i = a.pick();
            assert_eq!(i, b.pick());
            let qa = a.next_quote(i);
            assert_eq!(qa, b.next_quote(i));
            let (bid, ask) = (qa.bid.unwrap(), qa.ask.unwrap());
            assert_eq!(bid.cmp_value(ask), std::cmp::Ordering::Less);
            assert_eq!(bid.scale(), if i == 2 { 3 } else { 5 });
        }
    }
}
