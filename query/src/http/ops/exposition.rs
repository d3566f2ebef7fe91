//! `/metrics` in the Prometheus text format (0.0.4), which every scraper
//! and `promtool check metrics` read, or in OpenMetrics 1.0 when the
//! scraper asks for it: Sightline's own metrics (encoded as OpenMetrics by
//! `prometheus-client`, rewritten here for the text format), then the
//! latest value of every ingested series, so that a Prometheus can scrape
//! Sightline as a gateway.

use std::collections::BTreeMap;
use std::fmt::Write;

use sightline_storage::metrics::{Labels, Meta, MetricStore};
use sightline_storage::model::Tenant;

/// The family of a series name and its type, from the store's metadata:
/// `x_bucket` belongs to the histogram `x`, `x_total` to the counter `x`.
/// A histogram's or summary's `_bucket`, `_sum` and `_count` stay in it even
/// when something described them on their own (a Prometheus that scraped
/// them and remote-wrote them back, say): the text format's readers put
/// them in the histogram or summary anyway, and a second `# HELP` for it is
/// an error.
fn family(name: &str, meta: &BTreeMap<String, Meta>) -> (String, &'static str) {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(m) = meta.get(base)
            && matches!(m.kind, "histogram" | "summary")
        {
            return (base.to_owned(), m.kind);
        }
    }
    match meta.get(name) {
        Some(m) => (name.to_owned(), m.kind),
        None => (name.to_owned(), "untyped"),
    }
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

/// The two formats of `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// What an `Accept` header asks for: OpenMetrics when it names it (as
    /// Prometheus does by default), the text format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let asks = |a: &str| a.split(',').any(|t| t.trim().starts_with("application/openmetrics-text"));
        if accept.is_some_and(asks) { Format::OpenMetrics } else { Format::Text }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// A family's name and type as the format writes them in `# HELP` and
    /// `# TYPE`: the text format has `untyped` where OpenMetrics has
    /// `unknown`, and OpenMetrics names a counter without its `_total`.
    fn family<'a>(self, name: &'a str, kind: &'static str) -> (&'a str, &'static str) {
        match (self, kind) {
            (Format::Text, "unknown") => (name, "untyped"),
            (Format::OpenMetrics, "untyped") => (name, "unknown"),
            (Format::OpenMetrics, "counter") => (name.strip_suffix("_total").unwrap_or(name), "counter"),
            _ => (name, kind),
        }
    }
}

/// The families of a tenant's series, in `format`.
pub fn render(store: &MetricStore, tenant: &Tenant, format: Format) -> String {
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
        let (shown, kind) = format.family(&name, kind);
        let _ = writeln!(out, "# HELP {shown} {}", help.replace('\\', r"\\").replace('\n', r"\n"));
        let _ = writeln!(out, "# TYPE {shown} {kind}");
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
    fn each_format_names_its_types() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1")), Format::Text);
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        // Remote write says nothing of a family's type.
        assert_eq!(Format::Text.family("rw", "unknown"), ("rw", "untyped"));
        assert_eq!(Format::OpenMetrics.family("rw", "unknown"), ("rw", "unknown"));
        assert_eq!(Format::OpenMetrics.family("x", "untyped"), ("x", "unknown"));
        assert_eq!(Format::Text.family("orders_total", "counter"), ("orders_total", "counter"));
        assert_eq!(Format::OpenMetrics.family("orders_total", "counter"), ("orders", "counter"));
        assert_eq!(Format::OpenMetrics.family("latency_seconds", "histogram"), ("latency_seconds", "histogram"));
    }

    #[test]
    fn a_summarys_parts_stay_in_it_when_described_on_their_own() {
        let summary = Meta { kind: "summary", help: String::new(), unit: String::new() };
        let meta: BTreeMap<String, Meta> =
            [("rpc_seconds".to_string(), summary), ("rpc_seconds_count".to_string(), Meta::unknown())].into();
        assert_eq!(family("rpc_seconds_count", &meta), ("rpc_seconds".to_string(), "summary"));
        assert_eq!(family("rpc_seconds", &meta), ("rpc_seconds".to_string(), "summary"));
        assert_eq!(family("other_count", &meta), ("other_count".to_string(), "untyped"));
    }

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
