//! Remote write 2.0 requests turned into the 1.0 `WriteRequest` the door,
//! the WAL and the store already take: symbol references resolved into
//! labels, each series' metadata into the family's metadata, exemplars
//! kept, and a created timestamp written as Prometheus writes one (a zero
//! sample at that time before a counter's first sample). Native histogram
//! samples are counted, not stored.

use std::collections::BTreeMap;

use sightline_proto::prometheus::v2;
use sightline_proto::prometheus::{Exemplar, Label, MetricMetadata, Sample, TimeSeries, WriteRequest};
use sightline_storage::metrics::METRIC_NAME;

use crate::error::IngestError;

/// What a request held, for the `X-Prometheus-Remote-Write-*-Written`
/// answer headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub samples: u64,
    pub histograms: u64,
    pub exemplars: u64,
}

/// Metric types that count from zero, whose created timestamp is a zero sample.
const COUNTER: i32 = 1;
const HISTOGRAM: i32 = 3;
const SUMMARY: i32 = 5;

/// The 1.0 request for a 2.0 one, and what the 2.0 one held (created
/// timestamps' zero samples not counted: the client did not send them).
pub fn to_v1(request: v2::Request) -> Result<(WriteRequest, Sent), IngestError> {
    let symbols = &request.symbols;
    if symbols.first().is_some_and(|s| !s.is_empty()) {
        return Err(invalid("symbols[0] must be the empty string".into()));
    }
    let symbol = |r: u32| -> Result<&str, IngestError> {
        symbols.get(r as usize).map(String::as_str).ok_or_else(|| {
            invalid(format!("symbol reference {r} is past the {} symbols of the request", symbols.len()))
        })
    };
    let resolve = |refs: &[u32]| -> Result<Vec<Label>, IngestError> {
        if refs.len() % 2 == 1 {
            return Err(invalid(format!("{} label references: they come in name, value pairs", refs.len())));
        }
        refs.chunks(2).map(|p| Ok(Label { name: symbol(p[0])?.to_owned(), value: symbol(p[1])?.to_owned() })).collect()
    };
    let mut sent = Sent::default();
    let mut metadata = BTreeMap::<String, MetricMetadata>::new();
    let mut timeseries = Vec::with_capacity(request.timeseries.len());
    for ts in &request.timeseries {
        let labels = resolve(&ts.labels_refs)?;
        let exemplars = ts
            .exemplars
            .iter()
            .map(|e| Ok(Exemplar { labels: resolve(&e.labels_refs)?, value: e.value, timestamp: e.timestamp }))
            .collect::<Result<Vec<_>, IngestError>>()?;
        sent.samples += ts.samples.len() as u64;
        sent.histograms += ts.histograms.len() as u64;
        sent.exemplars += exemplars.len() as u64;
        let name = labels.iter().find(|l| l.name == METRIC_NAME).map(|l| l.value.clone()).unwrap_or_default();
        let kind = ts.metadata.as_ref().map_or(0, |m| m.r#type);
        if let Some(m) = &ts.metadata
            && !name.is_empty()
        {
            let described = MetricMetadata {
                r#type: m.r#type,
                metric_family_name: name.clone(),
                help: symbol(m.help_ref)?.to_owned(),
                unit: symbol(m.unit_ref)?.to_owned(),
            };
            metadata.entry(name).or_insert(described);
        }
        let mut samples = ts.samples.clone();
        let first = samples.iter().map(|s| s.timestamp).min();
        let counts_from_zero =
            matches!(kind, COUNTER | HISTOGRAM | SUMMARY) && !labels.iter().any(|l| l.name == "quantile");
        if let Some(first) = first
            && counts_from_zero
            && ts.created_timestamp > 0
            && ts.created_timestamp < first
        {
            samples.insert(0, Sample { value: 0.0, timestamp: ts.created_timestamp });
        }
        if !samples.is_empty() || !exemplars.is_empty() {
            timeseries.push(TimeSeries { labels, samples, exemplars });
        }
    }
    Ok((WriteRequest { timeseries, metadata: metadata.into_values().collect() }, sent))
}

fn invalid(why: String) -> IngestError {
    IngestError::Invalid(format!("invalid remote write 2.0 request: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols() -> Vec<String> {
        [
            "",
            "__name__",
            "http_requests_total",
            "job",
            "api",
            "trace_id",
            "0af7651916cd43dd8448eb211c80319c",
            "Requests.",
            "1",
        ]
        .map(String::from)
        .to_vec()
    }

    fn series(created: i64) -> v2::TimeSeries {
        v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![Sample { value: 7.0, timestamp: 2_000 }, Sample { value: 9.0, timestamp: 3_000 }],
            histograms: vec![v2::Histogram { timestamp: 3_000 }],
            exemplars: vec![v2::Exemplar { labels_refs: vec![5, 6], value: 1.5, timestamp: 2_500 }],
            metadata: Some(v2::Metadata { r#type: COUNTER, help_ref: 7, unit_ref: 8 }),
            created_timestamp: created,
        }
    }

    #[test]
    fn symbols_become_labels_metadata_and_exemplars() {
        let (w, sent) = to_v1(v2::Request { symbols: symbols(), timeseries: vec![series(0)] }).expect("valid");
        assert_eq!(sent, Sent { samples: 2, histograms: 1, exemplars: 1 });
        let ts = &w.timeseries[0];
        let labels: Vec<_> = ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        assert_eq!(labels, [("__name__", "http_requests_total"), ("job", "api")]);
        assert_eq!(ts.samples.len(), 2);
        assert_eq!(ts.exemplars[0].labels[0].value, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!((ts.exemplars[0].value, ts.exemplars[0].timestamp), (1.5, 2_500));
        let m = &w.metadata[0];
        assert_eq!(
            (m.r#type, m.metric_family_name.as_str(), m.help.as_str(), m.unit.as_str()),
            (1, "http_requests_total", "Requests.", "1")
        );
    }

    #[test]
    fn a_created_timestamp_is_a_zero_sample_before_a_counter_starts() {
        let (w, sent) = to_v1(v2::Request { symbols: symbols(), timeseries: vec![series(1_000)] }).expect("valid");
        assert_eq!(sent.samples, 2, "the zero is not the client's sample");
        let samples: Vec<_> = w.timeseries[0].samples.iter().map(|s| (s.timestamp, s.value)).collect();
        assert_eq!(samples, [(1_000, 0.0), (2_000, 7.0), (3_000, 9.0)]);
        // Not for a gauge, nor when it is not before the first sample.
        let mut gauge = series(1_000);
        gauge.metadata = Some(v2::Metadata { r#type: 2, help_ref: 0, unit_ref: 0 });
        let late = series(2_000);
        let (w, _) = to_v1(v2::Request { symbols: symbols(), timeseries: vec![gauge, late] }).expect("valid");
        assert!(w.timeseries.iter().all(|ts| ts.samples.len() == 2));
    }

    #[test]
    fn bad_references_are_refused() {
        let mut past = series(0);
        past.labels_refs = vec![1, 99];
        let mut odd = series(0);
        odd.labels_refs = vec![1, 2, 3];
        let mut help = series(0);
        help.metadata = Some(v2::Metadata { r#type: 1, help_ref: 42, unit_ref: 0 });
        for ts in [past, odd, help] {
            let err = to_v1(v2::Request { symbols: symbols(), timeseries: vec![ts] }).expect_err("refused");
            assert!(matches!(err, IngestError::Invalid(_)), "{err:?}");
        }
        let mut first = symbols();
        first[0] = "x".into();
        assert!(to_v1(v2::Request { symbols: first, timeseries: vec![series(0)] }).is_err());
    }
}
