//! OTLP decode and conversion to the model, per signal, on the load
//! generator's seeded requests: prost alone, then prost and conversion.
//!
//! Run: `cargo bench -p sightline-collector --bench otlp`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use sightline_collector::convert;
use sightline_loadgen::logs::LogGen;
use sightline_loadgen::metrics::MetricGen;
use sightline_loadgen::traces::{self, TraceShape};
use sightline_loadgen::{Rng, metrics};
use sightline_proto::otlp::{ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest};

const T0: u64 = 1_700_000_000_000_000_000;

/// Benchmarks decoding `bytes` as `M` alone, and decoding then converting.
fn signal<M: Message + Default, T>(c: &mut Criterion, name: &str, bytes: &[u8], items: u64, convert: fn(M) -> Vec<T>) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(items));
    g.bench_function("prost decode", |b| b.iter(|| M::decode(bytes).expect("decodes")));
    g.bench_function("decode and convert", |b| b.iter(|| convert(M::decode(bytes).expect("decodes"))));
    g.finish();
}

fn benches(c: &mut Criterion) {
    let (spans, _) = traces::request(&mut Rng::new(1), 50, &TraceShape::FIXED, T0, 1_000_000_000);
    signal::<ExportTraceServiceRequest, _>(c, "otlp traces (500 spans)", &spans.encode_to_vec(), 500, convert::spans);

    let logs = LogGen::new(1).request(1000, T0, 1_000_000);
    signal::<ExportLogsServiceRequest, _>(c, "otlp logs (1,000 lines)", &logs.encode_to_vec(), 1000, convert::logs);

    let round = MetricGen::new(1, 10, T0).round(T0 + 15_000_000_000);
    let points = metrics::points(&round) as u64;
    signal::<ExportMetricsServiceRequest, _>(
        c,
        "otlp metrics (1,000 points)",
        &round.encode_to_vec(),
        points,
        convert::metrics::points,
    );
}

criterion_group!(otlp, benches);
criterion_main!(otlp);
