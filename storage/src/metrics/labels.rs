//! Prometheus labels and the OpenTelemetry → Prometheus naming rules
//! (the specification's "Prometheus and OpenMetrics Compatibility" section):
//! metric names with unit and `_total` suffixes, sanitised label names.

use std::hash::BuildHasher;
use std::sync::Arc;

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// A series' labels, sorted by name, names unique; shared between the index
/// and query results. The hash of the pairs is computed once, where the
/// labels are made (the collector's edge, off the store's lock), so that a
/// series is found by it in [`LabelsMap`] without hashing its strings again.
#[derive(Clone, Debug)]
pub struct Labels {
    pairs: Arc<[(String, String)]>,
    hash: u64,
}

/// The hash of a label set: one fixed function, so that labels made
/// anywhere in the process agree.
fn hash_of(pairs: &[(String, String)]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5167_6874_6c69_6e65).hash_one(pairs)
}

impl Labels {
    /// Sorts, drops empty values (an empty label is no label), and keeps the
    /// last of duplicate names.
    pub fn new(mut pairs: Vec<(String, String)>) -> Labels {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        Labels::sorted(pairs)
    }

    /// Labels from pairs already sorted by name, names unique.
    fn sorted(pairs: Vec<(String, String)>) -> Labels {
        Labels { hash: hash_of(&pairs), pairs: pairs.into() }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok().map(|i| self.pairs[i].1.as_str())
    }

    pub fn name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// A copy with the label set (or removed, for an empty value).
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let mut pairs: Vec<_> = self.pairs.iter().filter(|(k, _)| k != name).cloned().collect();
        pairs.push((name.to_owned(), value.to_owned()));
        Labels::new(pairs)
    }

    pub fn without(&self, name: &str) -> Labels {
        self.keep(|k| k != name)
    }

    /// The address of the shared pairs: equal for clones, so a query can
    /// memoise per series without comparing labels.
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.pairs) as *const () as usize
    }

    /// A copy with only the labels whose names `keep` keeps.
    pub fn keep(&self, keep: impl Fn(&str) -> bool) -> Labels {
        Labels::sorted(self.pairs.iter().filter(|(k, _)| keep(k)).cloned().collect())
    }
}

impl Default for Labels {
    fn default() -> Self {
        Labels::sorted(Vec::new())
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.pairs == other.pairs
    }
}

impl Eq for Labels {}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.pairs.cmp(&other.pairs)
    }
}

/// Passes on the hash [`Labels`] carry (and hashes anything else simply).
#[derive(Clone, Copy, Default)]
pub struct CarriedHash(u64);

impl std::hash::Hasher for CarriedHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A map keyed by label sets that hashes nothing again.
pub type LabelsMap<V> = std::collections::HashMap<Labels, V, std::hash::BuildHasherDefault<CarriedHash>>;

impl std::fmt::Display for Labels {
    /// `name{a="1", b="2"}`, as Prometheus prints a series.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{{", self.name().unwrap_or_default())?;
        let mut first = true;
        for (k, v) in self.iter().filter(|(k, _)| *k != METRIC_NAME) {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{k}={v:?}")?;
        }
        write!(f, "}}")
    }
}

/// An inverted index from `label=value` to the ids of the series that have
/// it (ascending, as ids are given out in order).
#[derive(Debug, Default)]
pub struct Postings(std::collections::HashMap<String, std::collections::HashMap<String, Vec<u32>>>);

impl Postings {
    /// Indexes series `id` (ids must be added in increasing order).
    pub fn add(&mut self, id: u32, labels: &Labels) {
        for (k, v) in labels.iter() {
            self.0.entry(k.to_owned()).or_default().entry(v.to_owned()).or_default().push(id);
        }
    }

    /// The ids of `0..total` that have every `label="value"` hint: the
    /// intersection of their postings, or all of them without hints.
    pub fn candidates(&self, hints: &[(&str, &str)], total: usize) -> Vec<u32> {
        let mut lists = hints
            .iter()
            .map(|(k, v)| self.0.get(*k).and_then(|vals| vals.get(*v)).map(Vec::as_slice).unwrap_or_default());
        let Some(first) = lists.next() else {
            return (0..total as u32).collect();
        };
        let mut ids = first.to_vec();
        for list in lists {
            ids.retain(|id| list.binary_search(id).is_ok());
        }
        ids
    }
}

/// A valid label name: invalid characters become `_`; a leading digit gets
/// a `key_` prefix; a name of only underscores keeps a `key` prefix.
pub fn sanitize_label(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.is_empty() || (out.starts_with("__") && !name.starts_with("__")) {
        out.insert_str(0, "key");
    }
    out
}

/// A valid metric name: invalid characters become `_`, runs of `_` collapse,
/// a leading digit gets `_`.
fn sanitize_metric(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The Prometheus word for a UCUM unit (`s` → `seconds`), or the unit itself.
fn unit_word(unit: &str) -> Option<String> {
    let word = match unit {
        "" | "1" => return None,
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        other => {
            let w = sanitize_metric(other).trim_matches('_').to_owned();
            return (!w.is_empty()).then_some(w);
        }
    };
    Some(word.to_owned())
}

/// The Prometheus metric name of an OTLP metric: sanitised, with the unit
/// (`_seconds`, `_bytes_per_second`, `_ratio` for a gauge of unit `1`) and
/// `_total` for a monotonic sum, each added unless the name has it.
pub fn metric_name(name: &str, unit: &str, counter: bool, gauge: bool) -> String {
    let mut out = sanitize_metric(name);
    // `{requests}` and the like are annotations, not units.
    let unit: String = {
        let mut s = String::new();
        let mut depth = 0;
        for c in unit.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                c if depth == 0 => s.push(c),
                _ => {}
            }
        }
        s
    };
    let suffix = match unit.split_once('/') {
        Some((num, per)) => {
            let num = unit_word(num);
            let per = unit_word(match per {
                "s" => "second",
                "m" => "minute",
                "h" => "hour",
                "d" => "day",
                other => other,
            });
            match (num, per) {
                (Some(n), Some(p)) => Some(format!("{n}_per_{p}")),
                (None, Some(p)) => Some(format!("per_{p}")),
                (n, None) => n,
            }
        }
        None if unit == "1" && gauge => Some("ratio".to_owned()),
        None => unit_word(&unit),
    };
    if let Some(s) = suffix
        && !out.ends_with(&format!("_{s}"))
        && !out.contains(&format!("_{s}_"))
    {
        out.push('_');
        out.push_str(&s);
    }
    if counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_specification() {
        assert_eq!(
            metric_name("http.server.request.duration", "s", false, false),
            "http_server_request_duration_seconds"
        );
        assert_eq!(metric_name("orders", "", true, false), "orders_total");
        assert_eq!(metric_name("orders_total", "{order}", true, false), "orders_total");
        assert_eq!(metric_name("system.network.io", "By", true, false), "system_network_io_bytes_total");
        assert_eq!(metric_name("throughput", "By/s", false, true), "throughput_bytes_per_second");
        assert_eq!(metric_name("cpu.utilization", "1", false, true), "cpu_utilization_ratio");
        assert_eq!(metric_name("latency_seconds", "s", false, false), "latency_seconds");
        assert_eq!(metric_name("2xx..count", "", false, true), "_2xx_count");
        assert_eq!(sanitize_label("http.route"), "http_route");
        assert_eq!(sanitize_label("0day"), "key_0day");
        assert_eq!(sanitize_label("__name__"), "__name__");
    }

    #[test]
    fn equal_label_sets_made_any_way_hash_alike_and_meet_in_a_map() {
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let a = Labels::new(vec![pair("job", "x"), pair("__name__", "up"), pair("instance", "i")]);
        let b = Labels::new(vec![pair("instance", "i"), pair("job", "x"), pair("__name__", "up"), pair("z", "")]);
        let c = Labels::new(vec![pair("__name__", "up"), pair("instance", "i"), pair("job", "x"), pair("le", "1")])
            .without("le");
        let d = Labels::new(vec![pair("__name__", "up"), pair("instance", "i"), pair("job", "x"), pair("q", "1")])
            .keep(|k| k != "q");
        let mut map = LabelsMap::default();
        map.insert(a.clone(), 1);
        for other in [&b, &c, &d] {
            assert_eq!(other, &a);
            assert_eq!(map.get(other), Some(&1), "{other}");
        }
        let e = a.with("job", "y");
        assert_ne!(e, a);
        assert_eq!(map.get(&e), None);
        assert_eq!(Labels::default(), Labels::new(Vec::new()));
        assert_eq!(a.addr(), a.clone().addr(), "clones share their pairs");
    }

    #[test]
    fn labels_sort_and_drop_empty_values() {
        let l = Labels::new(vec![("b".into(), "2".into()), ("a".into(), "1".into()), ("c".into(), String::new())]);
        assert_eq!(l.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
        assert_eq!(l.with("__name__", "up").to_string(), r#"up{a="1", b="2"}"#);
        assert_eq!(l.get("b"), Some("2"));
    }
}
