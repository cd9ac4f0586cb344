//! Any bytes through framing, decoding and the book: never a panic, and a framed message
//! either decodes or is rejected with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickrec::fix::decode::{Decoder, MarketData};
use tickrec::fix::frame;
use tickrec::tick::{SourceId, SymbolId, Timestamp};

fuzz_target!(|data: &[u8]| {
    let symbols = [("EURUSD".to_string(), SymbolId(0)), ("USDJPY".to_string(), SymbolId(1))];
    let mut md = MarketData::new(SourceId(0), tickrec::tick::OriginId(1), &symbols);
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        match frame::check(rest) {
            Ok(n) => {
                if let Ok(d) = decoder.decode(&rest[..n]) {
                    let _ = md.apply(&d, Timestamp(0), Timestamp(0), &mut out);
                    decoder.recycle(d.entries);
                }
                rest = &rest[n..];
            }
            Err(frame::FrameError::Incomplete) => break,
            Err(frame::FrameError::Invalid(_)) => rest = &rest[frame::resync(rest)..],
        }
    }
    // Unframed input goes straight to the decoder too: it must not trust the framer.
    if let Ok(d) = decoder.decode(data) {
        let _ = md.apply(&d, Timestamp(0), Timestamp(0), &mut out);
        decoder.recycle(d.entries);
    }
});
