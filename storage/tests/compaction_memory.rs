//! Compaction streams: merging parts whose rows, held in memory at once,
//! would be several times a memory bound never holds more than that bound
//! (counted by this test binary's allocator), and the merged part is
//! complete and sorted by (trace id, start).

use std::alloc::System;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{Array, FixedSizeBinaryArray, Int64Array};
use cap::Cap;
use object_store::local::LocalFileSystem;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sightline_storage::model::{
    AttrValue, Attributes, Resource, Scope, Span, SpanId, SpanKind, StatusCode, Tenant, TraceId,
};
use sightline_storage::sink::{Batch, Sink};
use sightline_storage::spans::{SpanStore, SpanStoreConfig, columns};

/// Counts live heap bytes; during the compaction, also refuses to go past the bound.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

const PARTS: u64 = 4;
const TRACES_PER_PART: u64 = 7_000;
const SPANS_PER_TRACE: u64 = 15;
/// What the compaction may hold beyond what was live before it.
const BOUND: usize = 56 << 20;

fn spans_of_part(part: u64, t0: u64) -> Vec<Span> {
    let resource = Arc::new(Resource {
        service: format!("svc-{part}"),
        attributes: Attributes(vec![("host.name".into(), AttrValue::Str(format!("host-{part}")))]),
    });
    let scope = Arc::new(Scope { name: "lib".into(), version: "1".into() });
    let mut out = Vec::new();
    for t in 0..TRACES_PER_PART {
        // Every part holds spans of every trace: the merge interleaves them.
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&t.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        for i in 0..SPANS_PER_TRACE {
            let start = t0 + t * 1_000_000 + i * 1_000 + part;
            out.push(Span {
                trace_id: TraceId(id),
                span_id: SpanId((part << 32 | t << 8 | i | 1 << 63).to_be_bytes()),
                parent_span_id: None,
                trace_state: String::new(),
                flags: 0,
                name: format!("op-{}", i % 5),
                kind: SpanKind::Server,
                start_unix_nano: start,
                end_unix_nano: start + 5_000_000,
                status_code: StatusCode::Unset,
                status_message: String::new(),
                attributes: Attributes(vec![
                    ("http.route".into(), AttrValue::Str("/api/items/{id}".into())),
                    ("request.id".into(), AttrValue::Str(format!("{part:04}-{t:08}-{i:04}-7f3a9c"))),
                    ("user.id".into(), AttrValue::Str(format!("user-{}", t % 977))),
                    ("size".into(), AttrValue::Int((t * 31 + i) as i64)),
                ]),
                events: Vec::new(),
                links: Vec::new(),
                resource: resource.clone(),
                scope: scope.clone(),
            });
        }
    }
    out
}

/// The bytes of `rows` as a part's reader gives them back: the head's
/// dictionaries expanded.
fn decoded_size(rows: &arrow::array::RecordBatch) -> usize {
    rows.columns()
        .iter()
        .map(|c| match c.data_type() {
            arrow::datatypes::DataType::Dictionary(_, values) => {
                arrow::compute::cast(c, values).expect("cast").get_array_memory_size()
            }
            _ => c.get_array_memory_size(),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_holds_less_than_its_bound_and_writes_a_sorted_complete_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SpanStoreConfig {
        flush_spans: usize::MAX,
        flush_age: Duration::from_secs(3600),
        row_group_rows: 8192,
        compaction_min_parts: PARTS as usize,
        compaction_window: Duration::from_secs(10 * 365 * 24 * 3600),
        maintenance_interval: Duration::from_secs(3600),
        ..SpanStoreConfig::default()
    };
    let fs: Arc<dyn object_store::ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("fs"));
    let store = SpanStore::open(fs, config, None).await.expect("opens");
    let tenant = Tenant::new("t").expect("tenant");
    let t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64
        - 3_600_000_000_000;
    let mut in_memory = 0;
    for part in 0..PARTS {
        let spans = spans_of_part(part, t0);
        in_memory += decoded_size(&columns::to_batch(&spans.iter().collect::<Vec<_>>()).expect("batch").rows);
        for (i, chunk) in spans.chunks(500).enumerate() {
            let batch = Batch { tenant: tenant.clone(), wal_seq: part * 1000 + i as u64 + 1, items: chunk.to_vec() };
            store.consume(batch).expect("consume");
        }
        drop(spans);
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.flush_blocking()).await.expect("task").expect("flush");
    }
    let total = PARTS * TRACES_PER_PART * SPANS_PER_TRACE;
    assert_eq!(store.parts(&tenant).len(), PARTS as usize);
    assert!(
        in_memory > BOUND * 3 / 2,
        "the inputs, decoded at once, would take {in_memory} bytes: half again the bound"
    );

    // Sampled every 100 µs, and enforced: an allocation past the bound fails.
    let before = ALLOCATOR.allocated();
    ALLOCATOR.set_limit(before + BOUND).expect("limit");
    let (peak, stop) = (Arc::new(AtomicUsize::new(before)), Arc::new(AtomicBool::new(false)));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(ALLOCATOR.allocated(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.maintain_blocking()).await.expect("task").expect("compaction");
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    ALLOCATOR.set_limit(usize::MAX).expect("limit");
    let held = peak.load(Ordering::Relaxed).saturating_sub(before);
    println!(
        "compaction of {total} spans held at most {} KiB beyond what was live ({} KiB decoded at once)",
        held >> 10,
        in_memory >> 10
    );
    assert!(held < BOUND, "compaction held {held} bytes, bound {BOUND}");

    let parts = store.parts(&tenant);
    assert_eq!(parts.len(), 1, "merged into one");
    assert_eq!((parts[0].spans, parts[0].traces), (total, TRACES_PER_PART));
    let path = dir.path().join("spans/t").join(format!("{}.parquet", parts[0].id));
    let file = std::fs::File::open(&path).expect("merged part file");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader");
    let mut keys = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let ids = batch.column(0).as_any().downcast_ref::<FixedSizeBinaryArray>().expect("trace ids");
        let starts = batch.column(3).as_any().downcast_ref::<Int64Array>().expect("starts");
        keys.extend((0..batch.num_rows()).map(|i| (ids.value(i).to_vec(), starts.value(i))));
    }
    assert_eq!(keys.len() as u64, total, "every span");
    assert!(keys.windows(2).all(|w| w[0] <= w[1]), "sorted by (trace id, start)");
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.shutdown_blocking()).await.expect("task");
}
