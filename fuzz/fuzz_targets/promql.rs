//! PromQL parsing and evaluation against a small store: any text gives a
//! value or an error, at an instant and over a short range.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use sightline_query::limits::Budget;
use sightline_query::promql::{instant, range};
use sightline_storage::metrics::{Labels, MetricStore, Sample};
use sightline_storage::model::Tenant;

static STORE: LazyLock<(MetricStore, Tenant)> = LazyLock::new(|| {
    let store = MetricStore::default();
    let tenant = Tenant::new("fuzz").expect("tenant");
    let mut samples = Vec::new();
    let series: [&[(&str, &str)]; 5] = [
        &[("__name__", "http_requests_total"), ("code", "200"), ("instance", "a")],
        &[("__name__", "http_requests_total"), ("code", "500"), ("instance", "b")],
        &[("__name__", "node_memory"), ("instance", "a")],
        &[("__name__", "latency_bucket"), ("le", "0.5")],
        &[("__name__", "latency_bucket"), ("le", "+Inf")],
    ];
    for (k, pairs) in series.iter().enumerate() {
        let labels = Labels::new(pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect());
        for i in 0..=40i64 {
            samples.push(Sample { labels: labels.clone(), t: i * 15_000, v: (i * (k as i64 + 1)) as f64 });
        }
    }
    store.append(&tenant, samples, Vec::new());
    (store, tenant)
});

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    let (store, tenant) = &*STORE;
    let budget = Budget::unlimited();
    let _ = instant(store, tenant, &budget, query, 300_000, 300_000);
    let _ = range(store, tenant, &budget, query, 0, 600_000, 60_000, 300_000);
});
