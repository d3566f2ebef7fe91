//! Prometheus remote-write bodies: snappy, protobuf, validation and the
//! conversion into samples, as the receiver and the pipeline do them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sightline_collector::signal::RemoteWrite;
use sightline_proto::prometheus::WriteRequest;

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    // Raw protobuf as well as snappy-framed, so that mutations reach the decoder.
    let raw = match snap::raw::decompress_len(data) {
        Ok(len) if len <= LIMIT => snap::raw::Decoder::new().decompress_vec(data).unwrap_or_else(|_| data.to_vec()),
        _ => data.to_vec(),
    };
    if let Ok(w) = WriteRequest::decode(raw.as_slice()) {
        sightline_fuzz::admit::<RemoteWrite>(w);
    }
});
