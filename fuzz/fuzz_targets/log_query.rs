//! The log query language's parser: any text gives a query or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sightline_query::log_query::parse(text);
    }
});
