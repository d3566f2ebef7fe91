//! The suite's metric samples as Prometheus would remote-write them: the
//! OTLP requests turned into series by the collector's own mapping, in
//! snappy-compressed 1.0 `WriteRequest`s of at most 2,000 samples (a
//! Prometheus's default `max_samples_per_send`).

use std::time::Instant;

use bytes::Bytes;
use prost::Message as _;
use sightline_proto::otlp::ExportMetricsServiceRequest;
use sightline_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

use crate::suite_data::Dataset;

/// Samples a request carries at most.
const PER_REQUEST: usize = 2_000;

pub struct RemoteWriteData {
    /// Samples and the snappy-compressed body of each request.
    pub requests: Vec<(u64, Bytes)>,
    pub samples: u64,
}

impl RemoteWriteData {
    pub fn from_metrics(data: &Dataset) -> RemoteWriteData {
        let mut series = Vec::new();
        for (_, body) in &data.requests {
            let request = ExportMetricsServiceRequest::decode(body.as_ref()).expect("the suite's own request");
            for point in sightline_collector::convert::metrics::points(request) {
                for s in point.samples {
                    let labels = s.labels.iter().map(|(n, v)| Label { name: n.into(), value: v.into() }).collect();
                    series.push(TimeSeries {
                        labels,
                        samples: vec![Sample { value: s.v, timestamp: s.t }],
                        exemplars: vec![],
                    });
                }
            }
        }
        let samples = series.len() as u64;
        let requests = series
            .chunks(PER_REQUEST)
            .map(|chunk| {
                let w = WriteRequest { timeseries: chunk.to_vec(), metadata: Vec::new() };
                let body = snap::raw::Encoder::new().compress_vec(&w.encode_to_vec()).expect("snappy");
                (chunk.len() as u64, Bytes::from(body))
            })
            .collect();
        RemoteWriteData { requests, samples }
    }

    /// Samples per second that one core takes out of snappy and decodes
    /// with prost (over up to 2 M samples).
    pub fn bare_decode_rate(&self) -> f64 {
        let (mut samples, started) = (0u64, Instant::now());
        for (n, body) in &self.requests {
            let raw = snap::raw::Decoder::new().decompress_vec(body).expect("snappy");
            std::hint::black_box(WriteRequest::decode(raw.as_slice()).expect("decodes"));
            samples += n;
            if samples >= 2_000_000 {
                break;
            }
        }
        samples as f64 / started.elapsed().as_secs_f64()
    }
}
