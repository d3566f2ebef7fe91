//! OTLP/JSON bodies as a receiver gets them: decode, validate, convert.
//! The first byte picks the signal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_collector::signal::{Logs, Metrics, OtlpSignal, Traces};

fn run<K: OtlpSignal>(body: &[u8]) {
    if let Ok(request) = K::decode_json(body) {
        sightline_fuzz::admit::<K>(request);
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
