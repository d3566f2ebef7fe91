//! Collectors over the fast columns: the newest (or oldest) hits in a time
//! range, counts over time, and the top values of a field. Each reads the
//! timestamp column to keep only documents in the asked range.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{ColumnValues, StrColumn};
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

/// Where a record sits in the order of a search: its timestamp, then its
/// WAL position for records with equal timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    pub ts: i64,
    pub seq: u64,
}

impl SortKey {
    /// The key as it compares for the order asked: larger is earlier in the result.
    fn ranked(self, newest_first: bool) -> (i64, u64) {
        if newest_first { (self.ts, self.seq) } else { (!self.ts, !self.seq) }
    }
}

/// Inclusive bounds on the timestamp, in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct TimeRange {
    pub start: i64,
    pub end: i64,
}

impl TimeRange {
    fn contains(&self, ts: i64) -> bool {
        self.start <= ts && ts <= self.end
    }
}

fn timestamps(segment: &SegmentReader) -> tantivy::Result<Arc<dyn ColumnValues<i64>>> {
    segment.fast_fields().column_first_or_default::<i64>("timestamp")
}

/// The first `limit` documents in the order asked, strictly after `after`.
pub struct Newest {
    pub limit: usize,
    pub range: TimeRange,
    pub newest_first: bool,
    pub after: Option<SortKey>,
}

pub struct NewestSegment {
    ord: SegmentOrdinal,
    ts: Arc<dyn ColumnValues<i64>>,
    seq: Arc<dyn ColumnValues<u64>>,
    limit: usize,
    range: TimeRange,
    newest_first: bool,
    after: Option<(i64, u64)>,
    /// The best `limit` so far; the worst on top.
    heap: BinaryHeap<Reverse<((i64, u64), DocId)>>,
}

impl Collector for Newest {
    type Fruit = Vec<(SortKey, DocAddress)>;
    type Child = NewestSegment;

    fn for_segment(&self, ord: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<NewestSegment> {
        Ok(NewestSegment {
            ord,
            ts: timestamps(segment)?,
            seq: segment.fast_fields().column_first_or_default::<u64>("seq")?,
            limit: self.limit,
            range: self.range,
            newest_first: self.newest_first,
            after: self.after.map(|k| k.ranked(self.newest_first)),
            heap: BinaryHeap::with_capacity(self.limit.min(4096) + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<(SortKey, DocAddress)>>) -> tantivy::Result<Self::Fruit> {
        let mut all: Vec<_> = fruits.into_iter().flatten().collect();
        all.sort_unstable_by_key(|(k, _)| Reverse(k.ranked(self.newest_first)));
        all.truncate(self.limit);
        Ok(all)
    }
}

impl SegmentCollector for NewestSegment {
    type Fruit = Vec<(SortKey, DocAddress)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if self.limit == 0 {
            return;
        }
        let ts = self.ts.get_val(doc);
        if !self.range.contains(ts) {
            return;
        }
        let ranked_ts = if self.newest_first { ts } else { !ts };
        // Most matches lose on the timestamp alone: skip reading their seq.
        if self.heap.len() == self.limit
            && let Some(worst) = self.heap.peek()
            && ranked_ts < worst.0.0.0
        {
            return;
        }
        let key = SortKey { ts, seq: self.seq.get_val(doc) }.ranked(self.newest_first);
        if self.after.is_some_and(|a| key >= a) {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push(Reverse((key, doc)));
        } else if let Some(worst) = self.heap.peek()
            && key > worst.0.0
        {
            self.heap.pop();
            self.heap.push(Reverse((key, doc)));
        }
    }

    fn harvest(self) -> Self::Fruit {
        let (ord, newest_first) = (self.ord, self.newest_first);
        self.heap
            .into_iter()
            .map(|Reverse((key, doc_id))| {
                let key =
                    if newest_first { SortKey { ts: key.0, seq: key.1 } } else { SortKey { ts: !key.0, seq: !key.1 } };
                (key, DocAddress { segment_ord: ord, doc_id })
            })
            .collect()
    }
}

/// Counts of matching documents per time bucket of `step` nanoseconds,
/// starting at `range.start`.
pub struct Histogram {
    pub range: TimeRange,
    pub step: i64,
    pub buckets: usize,
}

pub struct HistogramSegment {
    ts: Arc<dyn ColumnValues<i64>>,
    range: TimeRange,
    step: i64,
    counts: Vec<u64>,
}

impl Collector for Histogram {
    type Fruit = Vec<u64>;
    type Child = HistogramSegment;

    fn for_segment(&self, _: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<HistogramSegment> {
        Ok(HistogramSegment {
            ts: timestamps(segment)?,
            range: self.range,
            step: self.step.max(1),
            counts: vec![0; self.buckets],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        let mut total = vec![0; self.buckets];
        for f in fruits {
            total.iter_mut().zip(f).for_each(|(t, c)| *t += c);
        }
        Ok(total)
    }
}

impl SegmentCollector for HistogramSegment {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let ts = self.ts.get_val(doc);
        if self.range.contains(ts) {
            let i = ((ts - self.range.start) / self.step) as usize;
            if let Some(c) = self.counts.get_mut(i) {
                *c += 1;
            }
        }
    }

    fn harvest(self) -> Vec<u64> {
        self.counts
    }
}

/// A field whose values can be counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopField {
    Service,
    Host,
    /// Severity numbers, reported by the caller as names.
    Severity,
}

/// Matching documents counted per value of a field.
pub struct TopValues {
    pub range: TimeRange,
    pub field: TopField,
}

enum Values {
    Text(StrColumn, Vec<u64>),
    Number(Arc<dyn ColumnValues<u64>>, HashMap<u64, u64>),
    Missing,
}

pub struct TopValuesSegment {
    ts: Arc<dyn ColumnValues<i64>>,
    range: TimeRange,
    values: Values,
}

impl Collector for TopValues {
    type Fruit = HashMap<String, u64>;
    type Child = TopValuesSegment;

    fn for_segment(&self, _: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<TopValuesSegment> {
        let fast = segment.fast_fields();
        let values = match self.field {
            TopField::Severity => Values::Number(fast.column_first_or_default::<u64>("severity")?, HashMap::new()),
            TopField::Service | TopField::Host => {
                let name = if self.field == TopField::Service { "service" } else { "host" };
                match fast.str(name)? {
                    Some(col) => {
                        let n = col.num_terms();
                        Values::Text(col, vec![0; n])
                    }
                    None => Values::Missing,
                }
            }
        };
        Ok(TopValuesSegment { ts: timestamps(segment)?, range: self.range, values })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<HashMap<String, u64>>) -> tantivy::Result<HashMap<String, u64>> {
        let mut total = HashMap::new();
        for (k, v) in fruits.into_iter().flatten() {
            *total.entry(k).or_default() += v;
        }
        Ok(total)
    }
}

impl SegmentCollector for TopValuesSegment {
    type Fruit = HashMap<String, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if !self.range.contains(self.ts.get_val(doc)) {
            return;
        }
        match &mut self.values {
            Values::Text(col, counts) => {
                for ord in col.term_ords(doc) {
                    if let Some(c) = counts.get_mut(ord as usize) {
                        *c += 1;
                    }
                }
            }
            Values::Number(col, counts) => *counts.entry(col.get_val(doc)).or_default() += 1,
            Values::Missing => {}
        }
    }

    fn harvest(self) -> HashMap<String, u64> {
        match self.values {
            Values::Text(col, counts) => {
                let mut out = HashMap::new();
                let mut text = String::new();
                for (ord, n) in counts.into_iter().enumerate().filter(|(_, n)| *n > 0) {
                    text.clear();
                    if col.ord_to_str(ord as u64, &mut text).unwrap_or(false) {
                        out.insert(text.clone(), n);
                    }
                }
                out
            }
            Values::Number(_, counts) => counts.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            Values::Missing => HashMap::new(),
        }
    }
}
