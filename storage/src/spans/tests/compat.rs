//! Compatibility: parts written by every format version stay readable and
//! merge with parts of the current one.

use super::*;

/// This crate's folder: as cargo says when it runs the tests (a test binary
/// reused from a build in another clone would otherwise look there).
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}

/// A data directory holding a copy of the checked-in part of `version`
/// (tenant `compat`).
fn checked_in_sample(version: u32) -> TestPlace {
    let data = manifest_dir().join(format!("tests/data/spans-v{version}"));
    let copy = TestPlace::filesystem();
    let dest = copy.dir.path().join("spans/compat");
    std::fs::create_dir_all(&dest).expect("mkdir");
    for entry in std::fs::read_dir(data.join("spans/compat")).expect("sample present") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dest.join(entry.file_name())).expect("copy");
    }
    copy
}

/// Parts written by every format version must stay readable by every
/// later one: `tests/data/spans-v<version>` are checked-in parts of the same
/// three spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checked_in_parts_of_every_version_still_read() {
    for version in 1..=part::FORMAT_VERSION {
        let copy = checked_in_sample(version);
        let store = open(&copy, config()).await;
        let tenant = Tenant::new("compat").expect("tenant");
        assert_eq!(store.counts(&tenant), SpanCounts { head_spans: 0, part_spans: 3, parts: 1 }, "v{version}");
        assert_eq!(store.parts(&tenant)[0].format_version, version);
        let trace = store.trace(&tenant, TraceId([1; 16]), 10).await.expect("trace");
        assert_eq!(trace.spans.len(), 2, "v{version}");
        let root = trace.spans.iter().find(|s| s.parent_span_id.is_none()).expect("root");
        assert_eq!(root.attributes.get("http.route"), Some(&AttrValue::Str("/cart".into())));
        assert_eq!(root.attributes.get("map"), Some(&AttrValue::Map(attrs(&[("inner", AttrValue::Double(1.25))]))));
        assert_eq!(root.events[0].name, "retry");
        // A search reads the part's trace table (v2) or its span columns (v1).
        let query = SpanQuery { service: Some("checkout".into()), end_unix_nano: u64::MAX, ..SpanQuery::default() };
        let found = store.newest_traces(&tenant, &query, 10, 100).await.expect("search");
        let ids: Vec<TraceId> = found.iter().map(|f| f.id).collect();
        assert_eq!(ids, vec![TraceId([2; 16]), TraceId([1; 16])], "v{version}: newest first");
        assert_eq!(found[1].spans.len(), 2);
        blocking(move || store.shutdown_blocking()).await;
    }
}

/// Parts of older versions, with their resources on every row, merge with
/// parts that keep their resources once: the merged part (current version)
/// keeps every span's resource whole and searchable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_parts_compact_with_new_ones_keeping_every_resource() {
    for version in 1..part::FORMAT_VERSION {
        let copy = checked_in_sample(version);
        let config = SpanStoreConfig {
            retention: Duration::from_secs(100 * 365 * 24 * 3600),
            compaction_min_parts: 2,
            ..config()
        };
        let store = open(&copy, config).await;
        let tenant = Tenant::new("compat").expect("tenant");
        let mut new = span(3, 7, None, 1_700_000_000_000_000_300);
        new.resource = Arc::new(Resource {
            service: "stock".into(),
            attributes: attrs(&[
                ("service.name", AttrValue::Str("stock".into())),
                ("host.name", AttrValue::Str("h1".into())),
            ]),
        });
        store.consume(Batch { tenant: tenant.clone(), wal_seq: 9, items: vec![new.clone()] }).expect("consume");
        let s = store.clone();
        blocking(move || s.flush_blocking()).await.expect("flush");
        assert_eq!(store.counts(&tenant).parts, 2, "v{version}");
        let s = store.clone();
        blocking(move || s.maintain_blocking()).await.expect("compaction");
        let parts = store.parts(&tenant);
        assert_eq!(parts.len(), 1, "v{version}: merged");
        assert_eq!((parts[0].format_version, parts[0].spans), (part::FORMAT_VERSION, 4), "v{version}");
        let old = store.trace(&tenant, TraceId([1; 16]), 10).await.expect("trace");
        assert_eq!(old.spans.len(), 2, "v{version}");
        assert!(
            old.spans.iter().all(|s| s.resource.service == "checkout"
                && s.resource.attributes.get_str("service.name") == Some("checkout"))
        );
        let merged = store.trace(&tenant, TraceId([3; 16]), 10).await.expect("trace");
        assert_eq!(merged.spans.len(), 1, "v{version}");
        assert_eq!(*merged.spans[0].resource, *new.resource, "v{version}");
        let by_host = SpanQuery {
            attributes: vec![("host.name".into(), "h1".into())],
            end_unix_nano: u64::MAX,
            ..SpanQuery::default()
        };
        let found = store.newest_traces(&tenant, &by_host, 10, 100).await.expect("search");
        assert_eq!(found.iter().map(|f| f.id).collect::<Vec<_>>(), vec![TraceId([3; 16])], "v{version}");
        let by_service = SpanQuery {
            attributes: vec![("service.name".into(), "checkout".into())],
            end_unix_nano: u64::MAX,
            ..SpanQuery::default()
        };
        let found = store.newest_traces(&tenant, &by_service, 10, 100).await.expect("search");
        assert_eq!(found.len(), 2, "v{version}: both old traces");
        blocking(move || store.shutdown_blocking()).await;
    }
}

/// Writes a sample part in the current format version into
/// `tests/data/spans-v<version>`; run once with `--ignored` when a new
/// format version is introduced, and check the files in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the checked-in compatibility sample"]
async fn write_current_version_sample() {
    let out = manifest_dir().join(format!("tests/data/spans-v{}", part::FORMAT_VERSION));
    std::fs::create_dir_all(&out).expect("mkdir");
    let fs = object_store::local::LocalFileSystem::new_with_prefix(&out).expect("fs");
    let tenant = Tenant::new("compat").expect("tenant");
    let spans = [
        span(1, 1, None, 1_700_000_000_000_000_000),
        span(1, 2, Some(1), 1_700_000_000_000_000_100),
        span(2, 3, None, 1_700_000_000_000_000_200),
    ];
    let encoded =
        part::encode(&tenant, "00000000000000000001-000001".into(), 0, spans.iter().collect(), 3, 2).expect("encode");
    part::publish(&fs, encoded).await.expect("publish");
}
