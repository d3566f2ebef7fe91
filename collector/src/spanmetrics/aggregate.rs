//! One tenant's running totals: RED series keyed by interned label values,
//! service-graph edges, and the recent spans that edges are matched from.
//!
//! Everything on the per-span path is a hash lookup on small integer keys
//! (strings are interned once per distinct value), a bucket increment and,
//! for the service graph, two lookups by (trace id, span id). Labels are
//! built only when a flush turns the series that changed into samples.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use sightline_storage::model::{AttrValue, Span, SpanId, SpanKind, StatusCode, TraceId};

type FastMap<K, V> = HashMap<K, V, RandomState>;

/// Distinct strings, each stored once and named by its index.
#[derive(Default)]
pub(super) struct Interner {
    ids: FastMap<Arc<str>, u32>,
    values: Vec<Arc<str>>,
}

impl Interner {
    pub(super) fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.values.len() as u32;
        let value: Arc<str> = Arc::from(s);
        self.values.push(value.clone());
        self.ids.insert(value, id);
        id
    }

    pub(super) fn get(&self, id: u32) -> &Arc<str> {
        &self.values[id as usize]
    }
}

/// A dimension the span does not have: that label is left out.
pub(super) const ABSENT: u32 = u32::MAX;

/// The labels of one RED series, as interned ids.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct SpanKey {
    pub service: u32,
    pub name: u32,
    pub kind: SpanKind,
    pub status: StatusCode,
    /// One id per configured dimension, [`ABSENT`] where missing.
    pub dims: Vec<u32>,
}

/// A call counter and a latency histogram.
#[derive(Clone, Debug)]
pub(super) struct Totals {
    pub calls: u64,
    pub failed: u64,
    pub sum: f64,
    /// Observations per bucket (not cumulative); the last is above every bound.
    pub buckets: Box<[u64]>,
    /// Changed since the last flush.
    pub dirty: bool,
}

impl Totals {
    fn new(bounds: usize) -> Self {
        Self { calls: 0, failed: 0, sum: 0.0, buckets: vec![0; bounds + 1].into(), dirty: false }
    }

    fn observe(&mut self, bounds: &[f64], seconds: f64, failed: bool) {
        self.calls += 1;
        self.failed += u64::from(failed);
        self.sum += seconds;
        // The first bound at or above the value: `le` buckets are inclusive.
        self.buckets[bounds.partition_point(|le| *le < seconds)] += 1;
        self.dirty = true;
    }

    /// Cumulative counts per bound, as `_bucket{le}` reports them.
    pub(super) fn cumulative(&self) -> impl Iterator<Item = u64> + '_ {
        self.buckets[..self.buckets.len() - 1].iter().scan(0, |acc, n| {
            *acc += n;
            Some(*acc)
        })
    }
}

/// What the service graph remembers of a span.
#[derive(Clone, Copy, Debug)]
struct Seen {
    service: u32,
    failed: bool,
    seconds: f64,
}

type SpanRef = (TraceId, SpanId);

/// A map whose entries live between half the wait and the whole wait (or
/// until `cap` newer entries push them out): two generations, the older
/// dropped whole when the newer is full or old enough. Expiry costs nothing
/// per entry and memory stays bounded under any rate.
struct Generations<V> {
    young: FastMap<SpanRef, V>,
    old: FastMap<SpanRef, V>,
    since: Instant,
    half_wait: Duration,
    half_cap: usize,
}

impl<V> Generations<V> {
    fn new(wait: Duration, cap: usize) -> Self {
        Self {
            young: FastMap::default(),
            old: FastMap::default(),
            since: Instant::now(),
            half_wait: wait / 2,
            half_cap: (cap / 2).max(1),
        }
    }

    fn rotate_if_due(&mut self, now: Instant) {
        if self.young.len() >= self.half_cap || now.duration_since(self.since) >= self.half_wait {
            self.old = std::mem::take(&mut self.young);
            self.since = now;
        }
    }

    fn get(&self, k: &SpanRef) -> Option<&V> {
        self.young.get(k).or_else(|| self.old.get(k))
    }

    fn remove(&mut self, k: &SpanRef) -> Option<V> {
        self.young.remove(k).or_else(|| self.old.remove(k))
    }

    fn entry(&mut self, k: SpanRef) -> &mut V
    where
        V: Default,
    {
        if let Some(v) = self.old.remove(&k) {
            return self.young.entry(k).or_insert(v);
        }
        self.young.entry(k).or_default()
    }

    fn insert(&mut self, k: SpanRef, v: V) {
        self.young.insert(k, v);
    }

    fn is_empty(&self) -> bool {
        self.young.is_empty() && self.old.is_empty()
    }

    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

/// Settings the aggregate needs on the span path.
pub(super) struct Shape<'a> {
    pub bounds: &'a [f64],
    pub dimensions: &'a [String],
    pub max_series: usize,
}

/// One tenant's derived metrics.
pub(super) struct Aggregate {
    pub strings: Interner,
    pub spans: FastMap<SpanKey, Totals>,
    /// (client service, server service) → totals.
    pub edges: FastMap<(u32, u32), Totals>,
    seen: Generations<Seen>,
    /// Children whose parent has not been seen yet, by the parent's id.
    waiting: Generations<Vec<Seen>>,
    /// Reused for lookups, so that a known series costs no allocation.
    scratch: SpanKey,
    /// Spans not counted because the tenant reached `max_series`.
    pub over_limit: u64,
}

impl Aggregate {
    pub(super) fn new(edge_wait: Duration, max_pending_edges: usize) -> Self {
        Self {
            strings: Interner::default(),
            spans: FastMap::default(),
            edges: FastMap::default(),
            seen: Generations::new(edge_wait, max_pending_edges),
            waiting: Generations::new(edge_wait, max_pending_edges),
            scratch: SpanKey {
                service: 0,
                name: 0,
                kind: SpanKind::Unspecified,
                status: StatusCode::Unset,
                dims: Vec::new(),
            },
            over_limit: 0,
        }
    }

    /// Spans remembered for edges whose other side may still arrive.
    pub(super) fn pending(&self) -> usize {
        self.seen.len() + self.waiting.len()
    }

    /// Counts a batch: every span into its RED series, every parent → child
    /// pair between two services (in this batch or across batches) into
    /// its edge.
    pub(super) fn observe(&mut self, shape: &Shape<'_>, spans: &[Span]) {
        let now = Instant::now();
        self.seen.rotate_if_due(now);
        self.waiting.rotate_if_due(now);
        // First remember every span of the batch, so that a child finds a
        // parent that came in the same batch whatever their order.
        let mut seen = Vec::with_capacity(spans.len());
        for s in spans {
            let service = self.strings.id(&s.resource.service);
            let me = Seen { service, failed: s.status_code == StatusCode::Error, seconds: seconds(s) };
            self.seen.insert((s.trace_id, s.span_id), me);
            seen.push(me);
        }
        for (s, &me) in spans.iter().zip(&seen) {
            self.count_span(shape, s, me);
            if !self.waiting.is_empty()
                && let Some(children) = self.waiting.remove(&(s.trace_id, s.span_id))
            {
                for child in children {
                    edge(&mut self.edges, shape.bounds, me, child);
                }
            }
            if let Some(parent) = s.parent_span_id {
                match self.seen.get(&(s.trace_id, parent)) {
                    Some(&p) => edge(&mut self.edges, shape.bounds, p, me),
                    None => self.waiting.entry((s.trace_id, parent)).push(me),
                }
            }
        }
    }

    fn count_span(&mut self, shape: &Shape<'_>, s: &Span, me: Seen) {
        let key = &mut self.scratch;
        key.service = me.service;
        key.name = self.strings.id(&s.name);
        key.kind = s.kind;
        key.status = s.status_code;
        key.dims.clear();
        for d in shape.dimensions {
            let id = match s.attributes.get(d).or_else(|| s.resource.attributes.get(d)) {
                None => ABSENT,
                Some(AttrValue::Str(v)) => self.strings.id(v),
                Some(v) => self.strings.id(&v.to_text()),
            };
            key.dims.push(id);
        }
        if let Some(totals) = self.spans.get_mut(key) {
            totals.observe(shape.bounds, me.seconds, me.failed);
        } else if self.spans.len() < shape.max_series {
            let mut totals = Totals::new(shape.bounds.len());
            totals.observe(shape.bounds, me.seconds, me.failed);
            self.spans.insert(key.clone(), totals);
        } else {
            self.over_limit += 1;
        }
    }
}

fn seconds(s: &Span) -> f64 {
    s.duration_nanos() as f64 / 1e9
}

/// One call between two services: the child's duration, failed when either side failed.
fn edge(edges: &mut FastMap<(u32, u32), Totals>, bounds: &[f64], parent: Seen, child: Seen) {
    if parent.service != child.service {
        edges.entry((parent.service, child.service)).or_insert_with(|| Totals::new(bounds.len())).observe(
            bounds,
            child.seconds,
            child.failed || parent.failed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_and_cumulative() {
        let bounds = [0.1, 0.2, 0.4];
        let mut t = Totals::new(bounds.len());
        for v in [0.05, 0.1, 0.15, 0.4, 9.0] {
            t.observe(&bounds, v, false);
        }
        assert_eq!(t.cumulative().collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(t.calls, 5);
    }

    #[test]
    fn generations_forget_the_old_half_and_stay_bounded() {
        let mut g: Generations<u32> = Generations::new(Duration::from_secs(3600), 4);
        let id = |n: u8| (TraceId([n; 16]), SpanId([n; 8]));
        let now = Instant::now();
        for n in 1..=10 {
            g.rotate_if_due(now);
            g.insert(id(n), u32::from(n));
        }
        assert!(g.len() <= 4, "at most the cap: {}", g.len());
        assert_eq!(g.get(&id(10)), Some(&10), "the newest is kept");
        assert_eq!(g.get(&id(1)), None, "the oldest is gone");
    }
}
