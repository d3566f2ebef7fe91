//! What the metric store appends: Prometheus samples, grouped by the data
//! point they came from. The collector makes them, once, at its edge (OTLP
//! points by the OpenTelemetry specification's Prometheus compatibility
//! rules, remote-write series as sent); the store only accumulates delta
//! points into cumulative series and appends.

use super::labels::{Labels, LabelsMap};
use super::store::Exemplar;

/// Prometheus's staleness marker: a NaN with this exact payload.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN
}

/// What Prometheus's metadata API says of a metric family.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Meta {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

impl Meta {
    /// What is said of a family nobody described (remote write).
    pub fn unknown() -> Meta {
        Meta { kind: "unknown", help: String::new(), unit: String::new() }
    }
}

/// One sample for one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    /// Milliseconds since the epoch.
    pub t: i64,
    pub v: f64,
}

/// The samples of one data point (an OTLP point, or one remote-write
/// series), appended together; the store refuses or accepts them as one
/// point.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub family: String,
    /// What the sender said of the family; `None` (remote write) keeps what
    /// is known of it, and is "unknown" otherwise.
    pub meta: Option<Meta>,
    pub samples: Vec<Sample>,
    /// The values are increments (OTLP delta temporality), summed by the
    /// store into cumulative series.
    pub delta: bool,
    /// Exemplars, each with the place in `samples` of the series it is for.
    pub exemplars: Vec<(usize, Exemplar)>,
    /// Made by Sightline (`target_info`), not sent: a refusal of it is no
    /// client point's.
    pub derived: bool,
}

/// Running sums of delta series, by output series, with the time (ms) of
/// their last point: [`expire_deltas`] forgets the ones idle too long, and
/// a series that comes back starts again from zero (a counter reset).
pub type DeltaState = LabelsMap<(f64, i64)>;

/// Turns the increments of a delta point into running totals.
pub fn accumulate(state: &mut DeltaState, samples: &mut [Sample]) {
    for s in samples {
        if is_stale(s.v) {
            continue;
        }
        let (total, last) = state.entry(s.labels.clone()).or_insert((0.0, s.t));
        *total += s.v;
        *last = (*last).max(s.t);
        s.v = *total;
    }
}

/// Forgets the running sums whose last point is older than `before` (ms).
pub fn expire_deltas(state: &mut DeltaState, before: i64) {
    state.retain(|_, (_, last)| *last >= before);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_points_accumulate_and_idle_sums_are_forgotten() {
        let labels = Labels::new(vec![("__name__".into(), "orders_total".into())]);
        let mut state = DeltaState::default();
        let mut totals = Vec::new();
        for (t, v) in [(1_000, 2.0), (2_000, 3.0), (3_000, f64::from_bits(STALE_NAN))] {
            let mut samples = [Sample { labels: labels.clone(), t, v }];
            accumulate(&mut state, &mut samples);
            totals.push(samples[0].v);
        }
        assert_eq!(totals[..2], [2.0, 5.0]);
        assert!(is_stale(totals[2]), "a staleness marker is kept as it is");
        expire_deltas(&mut state, 2_001);
        assert!(state.is_empty(), "idle running sums are forgotten");
    }
}
