//! The storage write path: WAL appends (with group-commit fsync and
//! without) and encoding a Parquet span part.
//!
//! Run: `cargo bench -p sightline-storage --bench write_path`.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sightline_storage::model::{
    AttrValue, Attributes, Resource, Scope, Signal, Span, SpanId, SpanKind, StatusCode, Tenant, TraceId,
};
use sightline_storage::spans::part;
use sightline_storage::wal::{Format, FsyncPolicy, Wal, WalConfig};

const APPENDS: usize = 64;
const PAYLOAD: usize = 64 * 1024;

fn wal(c: &mut Criterion) {
    let tenant = Tenant::new("bench").expect("tenant");
    let payload = Bytes::from(vec![0x5au8; PAYLOAD]);
    let mut g = c.benchmark_group("wal append (64 requests of 64 KiB)");
    g.throughput(Throughput::Bytes((APPENDS * PAYLOAD) as u64));
    for (name, fsync) in [("no fsync", FsyncPolicy::Never), ("group-commit fsync", FsyncPolicy::Batch)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = WalConfig { dir: dir.path().to_owned(), segment_bytes: 64 << 20, fsync, queue_capacity: 4096 };
        let (wal, _) = Wal::open(config, &mut Default::default()).expect("wal");
        g.bench_function(name, |b| {
            b.iter(|| {
                let (tx, rx) = std::sync::mpsc::channel();
                for _ in 0..APPENDS {
                    let tx = tx.clone();
                    let done = Box::new(move |r: Result<u64, _>| {
                        let _ = tx.send(r.is_ok());
                    });
                    wal.append((Signal::Traces, Format::Otlp), tenant.clone(), payload.clone(), done).expect("queued");
                }
                drop(tx);
                assert!(rx.iter().all(|ok| ok), "every append durable");
            })
        });
        wal.shutdown();
    }
    g.finish();
}

/// `n` spans of traces of ten, with ten attributes each, as the collector
/// would hand them over.
fn spans(n: usize) -> Vec<Span> {
    let resource = Arc::new(Resource {
        service: "orders".into(),
        attributes: Attributes(vec![("service.name".into(), AttrValue::Str("orders".into()))]),
    });
    let scope = Arc::new(Scope { name: "bench".into(), version: "1".into() });
    (0..n as u64)
        .map(|i| {
            let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&(i / 10).wrapping_mul(0x2545_f491_4f6c_dd1d).to_be_bytes());
            let start = 1_700_000_000_000_000_000 + i * 1_000_000;
            Span {
                trace_id: TraceId(trace),
                span_id: SpanId((x | 1).to_be_bytes()),
                parent_span_id: (i % 10 != 0).then(|| SpanId(((x >> 1) | 1).to_be_bytes())),
                trace_state: String::new(),
                flags: 1,
                name: ["GET /api/orders", "POST /api/pay", "SELECT orders"][(i % 3) as usize].into(),
                kind: SpanKind::Server,
                start_unix_nano: start,
                end_unix_nano: start + x % 500_000_000,
                status_code: if x % 20 == 0 { StatusCode::Error } else { StatusCode::Unset },
                status_message: String::new(),
                attributes: Attributes(vec![
                    ("http.request.method".into(), AttrValue::Str("GET".into())),
                    ("http.route".into(), AttrValue::Str("/api/orders".into())),
                    ("http.response.status_code".into(), AttrValue::Int(200)),
                    ("url.scheme".into(), AttrValue::Str("https".into())),
                    ("server.address".into(), AttrValue::Str("orders.internal".into())),
                    ("server.port".into(), AttrValue::Int(8080)),
                    ("user.id".into(), AttrValue::Str(format!("user-{}", x % 10_000))),
                    ("client.address".into(), AttrValue::Str(format!("10.0.{}.{}", x % 255, (x >> 8) % 255))),
                    ("http.request.body.size".into(), AttrValue::Int((x % 100_000) as i64)),
                    ("cache.hit".into(), AttrValue::Bool(x % 2 == 0)),
                ]),
                events: Vec::new(),
                links: Vec::new(),
                resource: resource.clone(),
                scope: scope.clone(),
            }
        })
        .collect()
}

fn parquet_part(c: &mut Criterion) {
    let tenant = Tenant::new("bench").expect("tenant");
    let spans = spans(50_000);
    let mut g = c.benchmark_group("span part");
    g.throughput(Throughput::Elements(spans.len() as u64));
    g.sample_size(10);
    g.bench_function("encode 50,000 spans to Parquet", |b| {
        b.iter(|| part::encode(&tenant, "bench".into(), 0, spans.iter().collect(), 1, 32_768).expect("encodes"))
    });
    g.finish();
}

criterion_group!(write_path, wal, parquet_part);
criterion_main!(write_path);
