//! The suite's fixed data sets: the load generator's seeded requests, with
//! times placed so that the stores can finish their work (closed hours for
//! spans and logs, whole 2-hour windows before a day boundary for samples),
//! kept encoded, and the baselines measured on the same bytes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sightline_loadgen::send::Payload;
use sightline_loadgen::{Generator, Signal};
use sightline_proto::otlp::metrics::{metric, number_data_point};
use sightline_storage::logs::{LogStore, LogStoreConfig};
use sightline_storage::model::{LogRecord, Span, Tenant};
use sightline_storage::sink::{Batch, Sink as _};
use sightline_storage::spans::part;

const HOUR_NS: u64 = 3_600_000_000_000;
const SCRAPE_NS: u64 = 15_000_000_000;
const HOSTS: usize = 100;

pub struct Dataset {
    pub signal: Signal,
    /// Items and encoded bytes of each request.
    pub requests: Vec<(u64, Bytes)>,
    pub items: u64,
    pub raw_bytes: u64,
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Dataset {
    pub fn generate(signal: Signal, items: u64) -> Dataset {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as u64;
        let (batch, start_ns, end_ns, step) = match signal {
            // ~550 spans (20 traces of 5–50) and 1,000 lines a request, over an hour that ended 2 h ago.
            Signal::Traces => (20, now - 3 * HOUR_NS, now - 2 * HOUR_NS, HOUR_NS * 550 / items.max(1)),
            Signal::Logs => (1000, now - 3 * HOUR_NS, now - 2 * HOUR_NS, HOUR_NS * 1000 / items.max(1)),
            // 100 hosts × 100 series a round, every 15 s, ending at the last day boundary.
            Signal::Metrics => {
                let day = 24 * HOUR_NS;
                let end = (now - HOUR_NS / 4) / day * day;
                let rounds = items / (HOSTS as u64 * 100);
                (HOSTS, end - rounds * SCRAPE_NS, end, SCRAPE_NS)
            }
        };
        let mut generator = Generator::new(signal, 42, batch);
        let (mut requests, mut total, mut raw, mut t) = (Vec::new(), 0, 0, start_ns + step);
        while total < items && t <= end_ns + step {
            let p = generator.payload(t.min(end_ns));
            let bytes = Bytes::from(p.encode());
            total += p.items();
            raw += bytes.len() as u64;
            requests.push((p.items(), bytes));
            t += step;
        }
        Dataset { signal, requests, items: total, raw_bytes: raw, start_ns, end_ns: end_ns + 1_000_000_000 }
    }

    /// Items per second that one core decodes with prost (over up to 2 M items).
    pub fn bare_decode_rate(&self) -> f64 {
        let (mut items, started) = (0u64, Instant::now());
        for (n, bytes) in &self.requests {
            let p = Payload::decode(self.signal, bytes).expect("decodes");
            std::hint::black_box(&p);
            items += n;
            if items >= 2_000_000 {
                break;
            }
        }
        items as f64 / started.elapsed().as_secs_f64()
    }

    /// Spans per second that the span store's Parquet encoder alone turns
    /// into parts of 200,000 (one core; over up to 1 M spans).
    pub fn bare_parquet_rate(&self) -> f64 {
        let tenant = Tenant::new("bench").expect("tenant");
        let spans: Vec<Span> = self
            .requests
            .iter()
            .scan(0u64, |seen, (n, bytes)| {
                *seen += n;
                (*seen <= 1_000_000).then_some(bytes)
            })
            .flat_map(|bytes| match Payload::decode(Signal::Traces, bytes) {
                Ok(Payload::Traces(r)) => sightline_collector::convert::spans(r),
                _ => Vec::new(),
            })
            .collect();
        let started = Instant::now();
        for chunk in spans.chunks(200_000) {
            part::encode(&tenant, "bench".into(), 0, chunk.iter().collect(), 1, 32_768).expect("encodes");
        }
        spans.len() as f64 / started.elapsed().as_secs_f64()
    }

    /// Lines per second that the log store alone (tantivy, its default
    /// indexing threads) indexes and commits, over up to 1 M lines.
    pub fn bare_index_rate(&self) -> f64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::open(LogStoreConfig::new(dir.path().join("logs")), None).expect("open");
        let tenant = Tenant::new("bench").expect("tenant");
        let batches: Vec<Vec<LogRecord>> = self
            .requests
            .iter()
            .take(1_000_000 / 1000)
            .filter_map(|(_, bytes)| match Payload::decode(Signal::Logs, bytes) {
                Ok(Payload::Logs(r)) => Some(sightline_collector::convert::logs(r)),
                _ => None,
            })
            .collect();
        let lines: usize = batches.iter().map(Vec::len).sum();
        let started = Instant::now();
        for (seq, items) in batches.into_iter().enumerate() {
            store.consume(Batch { tenant: tenant.clone(), wal_seq: seq as u64 + 1, items }).expect("consume");
        }
        store.commit_blocking().expect("commit");
        let rate = lines as f64 / started.elapsed().as_secs_f64();
        store.shutdown_blocking();
        rate
    }

    /// zstd (level 3) of all the requests' bytes.
    pub fn zstd_bytes(&self) -> u64 {
        let mut z = zstd::Encoder::new(Vec::new(), 3).expect("zstd");
        for (_, bytes) in &self.requests {
            z.write_all(bytes).expect("zstd");
        }
        z.finish().expect("zstd").len() as u64
    }

    /// Trace ids spread over the set, as hex.
    pub fn trace_ids(&self, n: usize) -> Vec<String> {
        let every = (self.requests.len() / n.max(1)).max(1);
        self.requests
            .iter()
            .step_by(every)
            .filter_map(|(_, bytes)| match Payload::decode(Signal::Traces, bytes) {
                Ok(Payload::Traces(r)) => {
                    Some(hex::encode(&r.resource_spans.first()?.scope_spans.first()?.spans.first()?.trace_id))
                }
                _ => None,
            })
            .take(n)
            .collect()
    }

    /// Bytes of a Prometheus TSDB made by promtool from the same samples.
    pub fn prometheus_tsdb_bytes(&self) -> u64 {
        let mut series: BTreeMap<(String, String), Vec<(u64, f64)>> = BTreeMap::new();
        for (_, bytes) in &self.requests {
            let Ok(Payload::Metrics(r)) = Payload::decode(Signal::Metrics, bytes) else { continue };
            for rm in &r.resource_metrics {
                let instance = rm
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == "service.instance.id"))
                    .map(label_value)
                    .unwrap_or_default();
                for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                    let points = match &m.data {
                        Some(metric::Data::Sum(s)) => &s.data_points,
                        Some(metric::Data::Gauge(g)) => &g.data_points,
                        _ => continue,
                    };
                    for p in points {
                        let mut labels: Vec<String> =
                            p.attributes.iter().map(|a| format!("{}=\"{}\"", a.key, label_value(a))).collect();
                        labels.push(format!("instance=\"{instance}\""));
                        let v = match p.value {
                            Some(number_data_point::Value::AsDouble(v)) => v,
                            Some(number_data_point::Value::AsInt(v)) => v as f64,
                            None => continue,
                        };
                        series
                            .entry((m.name.clone(), labels.join(",")))
                            .or_default()
                            .push((p.time_unix_nano / 1_000_000, v));
                    }
                }
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let om = dir.path().join("samples.om");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&om).expect("create"));
        let mut family = String::new();
        for ((name, labels), samples) in &series {
            if *name != family {
                writeln!(w, "# TYPE {name} unknown").expect("write");
                family.clone_from(name);
            }
            for (t, v) in samples {
                writeln!(w, "{name}{{{labels}}} {v} {:.3}", *t as f64 / 1000.0).expect("write");
            }
        }
        writeln!(w, "# EOF").expect("write");
        w.flush().expect("flush");
        drop(w);
        crate::prometheus_tsdb::promtool_tsdb_bytes(&om, &dir.path().join("tsdb"))
    }
}

fn label_value(a: &sightline_proto::otlp::common::KeyValue) -> String {
    use sightline_proto::otlp::common::any_value::Value;
    match a.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
