//! `/metrics` in the Prometheus text format (0.0.4), which every scraper
//! and `promtool check metrics` read: Sightline's own metrics (encoded as
//! OpenMetrics by `prometheus-client`, rewritten here), then the latest
//! value of every ingested series, so that a Prometheus can scrape
//! Sightline as a gateway.

use std::collections::BTreeMap;
use std::fmt::Write;

use sightline_storage::metrics::{Labels, Meta, MetricStore};
use sightline_storage::model::Tenant;

/// The family of a series name and its type, from the store's metadata:
/// `x_bucket` belongs to the histogram `x`, `x_total` to the counter `x`.
fn family(name: &str, meta: &BTreeMap<String, Meta>) -> (String, &'static str) {
    if let Some(m) = meta.get(name) {
        return (name.to_owned(), m.kind);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(m) = meta.get(base)
            && matches!(m.kind, "histogram" | "summary")
        {
            return (base.to_owned(), m.kind);
        }
    }
    (name.to_owned(), "untyped")
}

fn escape(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

/// Text-format families of a tenant's series.
pub fn render(store: &MetricStore, tenant: &Tenant) -> String {
    let meta = store.metadata(tenant);
    type Family = (&'static str, Vec<(Labels, i64, f64)>);
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for (labels, t, v) in store.latest(tenant) {
        let Some(name) = labels.name() else { continue };
        if name.starts_with("sightline_") {
            continue; // Sightline's own families come from its registry.
        }
        let (fam, kind) = family(name, &meta);
        families.entry(fam).or_insert((kind, Vec::new())).1.push((labels, t, v));
    }
    let mut out = String::new();
    for (name, (kind, mut samples)) in families {
        let help = meta.get(&name).map(|m| m.help.as_str()).filter(|h| !h.is_empty()).unwrap_or("Ingested metric");
        let _ = writeln!(out, "# HELP {name} {}", help.replace('\\', r"\\").replace('\n', r"\n"));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        // Series of a histogram together, buckets in increasing `le`.
        let order = |l: &Labels| {
            let le = l.get("le").and_then(|le| le.parse::<f64>().ok()).unwrap_or(f64::NAN);
            (l.without("le").without("__name__"), l.name().map(str::to_owned), le)
        };
        samples.sort_by(|a, b| {
            let (x, y) = (order(&a.0), order(&b.0));
            x.0.cmp(&y.0).then_with(|| x.1.cmp(&y.1)).then_with(|| x.2.total_cmp(&y.2))
        });
        for (labels, _, v) in samples {
            let pairs: Vec<String> = labels
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            // No timestamp: the scraper stamps the latest value, as with a
            // push gateway.
            let _ = writeln!(out, "{}{{{}}} {}", labels.name().unwrap_or_default(), pairs.join(","), float(v));
        }
    }
    out
}

/// Rewrites OpenMetrics text as the Prometheus text format: counters are
/// named with their `_total` samples, `info` becomes `gauge`, and `# UNIT`
/// and `# EOF` go.
pub fn openmetrics_to_text(om: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        om.lines().filter_map(|l| l.strip_prefix("# TYPE ")).filter_map(|l| l.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = if counters.contains(name) { format!("{name}_total") } else { name.to_owned() };
            let tail = if *prefix == "# TYPE " && tail == "info" { "gauge" } else { tail };
            Some(format!("{prefix}{name} {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_sample_names() {
        let om =
            "# HELP reqs Requests.\n# TYPE reqs counter\n# UNIT reqs x\nreqs_total 3\n# TYPE up gauge\nup 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP reqs_total Requests.\n# TYPE reqs_total counter\nreqs_total 3\n# TYPE up gauge\nup 1\n"
        );
    }
}
