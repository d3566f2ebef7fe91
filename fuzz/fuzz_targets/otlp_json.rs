//! OTLP/JSON bodies as a receiver gets them: decode, validate, convert.
//! The first byte picks the signal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_collector::signal::{Logs, Metrics, SignalKind, Traces};
use sightline_collector::validate::Limits;

fn run<K: SignalKind>(body: &[u8]) {
    if let Ok(mut request) = K::decode_json(body) {
        let _ = K::count(&request);
        let _ = K::validate(&mut request, Limits { max_attribute_depth: 16 });
        let _ = K::convert(request);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((signal, body)) = data.split_first() else { return };
    match signal % 3 {
        0 => run::<Traces>(body),
        1 => run::<Logs>(body),
        _ => run::<Metrics>(body),
    }
});
