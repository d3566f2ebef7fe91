//! Collectors over the fast columns: the newest (or oldest) hits in a time
//! range, counts over time, and the top values of a field. Each reads the
//! timestamp column to keep only documents in the asked range; any of them
//! stops at the query's deadline inside [`Deadlined`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{ColumnValues, StrColumn};
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use super::key_values::KeyValues;
use super::query::Target;

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
#[derive(Clone)]
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
#[derive(Clone, Debug, PartialEq)]
pub enum TopField {
    Service,
    Host,
    /// Severity numbers, reported by the caller as names.
    Severity,
    /// An attribute's values: a log record's, a resource's, or either
    /// ([`Target::Attribute`], [`Target::Resource`], [`Target::AnyAttribute`]).
    Attribute(Target),
}

/// Matching documents counted per value of a field.
#[derive(Clone)]
pub struct TopValues {
    pub range: TimeRange,
    pub field: TopField,
}

enum Values {
    Text(StrColumn, Vec<u64>),
    Key(KeyValues, Vec<u64>),
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
        let values = match &self.field {
            TopField::Severity => Values::Number(fast.column_first_or_default::<u64>("severity")?, HashMap::new()),
            TopField::Attribute(target) => {
                let values = KeyValues::read(segment, target)?;
                let n = values.names.len();
                Values::Key(values, vec![0; n])
            }
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
            Values::Key(values, counts) => values.for_each(doc, |ord| counts[ord as usize] += 1),
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
            Values::Key(values, counts) => values.names.into_iter().zip(counts).filter(|(_, n)| *n > 0).collect(),
            Values::Missing => HashMap::new(),
        }
    }
}

/// Documents a segment collector takes between two looks at the clock.
const DEADLINE_EVERY: u32 = 1024;

/// Another collector, stopped at a deadline inside a partition: no segment
/// is begun after it, and a segment stops collecting within
/// [`DEADLINE_EVERY`] documents of it. The search then fails, and
/// [`Deadlined::passed`] says why.
pub struct Deadlined<C> {
    inner: C,
    deadline: Option<Instant>,
    passed: Arc<AtomicBool>,
}

impl<C> Deadlined<C> {
    pub fn new(inner: C, deadline: Option<Instant>) -> Self {
        Self { inner, deadline, passed: Arc::default() }
    }

    /// True once the deadline stopped the search.
    pub fn passed(&self) -> bool {
        self.passed.load(Ordering::Relaxed)
    }

    fn check(&self) -> tantivy::Result<()> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.passed.store(true, Ordering::Relaxed);
        }
        if self.passed() {
            Err(tantivy::TantivyError::InternalError("the query deadline passed".into()))
        } else {
            Ok(())
        }
    }
}

pub struct DeadlinedSegment<S> {
    inner: S,
    deadline: Option<Instant>,
    passed: Arc<AtomicBool>,
    until_check: u32,
}

impl<C: Collector> Collector for Deadlined<C> {
    type Fruit = C::Fruit;
    type Child = DeadlinedSegment<C::Child>;

    fn for_segment(&self, ord: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<Self::Child> {
        self.check()?;
        Ok(DeadlinedSegment {
            inner: self.inner.for_segment(ord, segment)?,
            deadline: self.deadline,
            passed: self.passed.clone(),
            until_check: DEADLINE_EVERY,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.inner.requires_scoring()
    }

    fn merge_fruits(&self, fruits: Vec<<Self::Child as SegmentCollector>::Fruit>) -> tantivy::Result<Self::Fruit> {
        self.check()?;
        self.inner.merge_fruits(fruits)
    }
}

impl<S: SegmentCollector> SegmentCollector for DeadlinedSegment<S> {
    type Fruit = S::Fruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        if self.until_check == 0 {
            self.until_check = DEADLINE_EVERY;
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.passed.store(true, Ordering::Relaxed);
            }
        }
        self.until_check -= 1;
        if !self.passed.load(Ordering::Relaxed) {
            self.inner.collect(doc, score);
        }
    }

    fn harvest(self) -> Self::Fruit {
        self.inner.harvest()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use tantivy::collector::Count;
    use tantivy::query::AllQuery;
    use tantivy::schema::{STORED, Schema};
    use tantivy::{Index, TantivyDocument};

    use super::*;

    /// One segment of `docs` documents.
    fn index(docs: usize) -> Index {
        let mut schema = Schema::builder();
        let n = schema.add_u64_field("n", STORED);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).expect("writer");
        for i in 0..docs {
            let mut doc = TantivyDocument::default();
            doc.add_u64(n, i as u64);
            writer.add_document(doc).expect("add");
        }
        writer.commit().expect("commit");
        index
    }

    /// Counts what it is given, slowly: 1 ms every 100 documents.
    struct Slow(Arc<AtomicUsize>);
    struct SlowSegment(Arc<AtomicUsize>);

    impl Collector for Slow {
        type Fruit = ();
        type Child = SlowSegment;
        fn for_segment(&self, _: SegmentOrdinal, _: &SegmentReader) -> tantivy::Result<SlowSegment> {
            Ok(SlowSegment(self.0.clone()))
        }
        fn requires_scoring(&self) -> bool {
            false
        }
        fn merge_fruits(&self, _: Vec<()>) -> tantivy::Result<()> {
            Ok(())
        }
    }

    impl SegmentCollector for SlowSegment {
        type Fruit = ();
        fn collect(&mut self, _: DocId, _: Score) {
            if self.0.fetch_add(1, Ordering::Relaxed).is_multiple_of(100) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        fn harvest(self) {}
    }

    #[test]
    fn a_search_stops_at_its_deadline_inside_a_segment() {
        let searcher = index(5_000).reader().expect("reader").searcher();
        assert_eq!(searcher.segment_readers().len(), 1);

        let in_time = Deadlined::new(Count, Some(Instant::now() + Duration::from_secs(600)));
        assert_eq!(searcher.search(&AllQuery, &in_time).expect("in time"), 5_000);
        assert!(!in_time.passed());
        let no_deadline = Deadlined::new(Count, None);
        assert_eq!(searcher.search(&AllQuery, &no_deadline).expect("no deadline"), 5_000);

        let past = Deadlined::new(Count, Some(Instant::now()));
        assert!(searcher.search(&AllQuery, &past).is_err());
        assert!(past.passed(), "a passed deadline begins no segment");

        // All 5,000 would take at least 50 ms: the deadline passes inside
        // the one segment, and collecting stops there.
        let seen = Arc::new(AtomicUsize::new(0));
        let slow = Deadlined::new(Slow(seen.clone()), Some(Instant::now() + Duration::from_millis(20)));
        assert!(searcher.search(&AllQuery, &slow).is_err());
        assert!(slow.passed());
        let seen = seen.load(Ordering::Relaxed);
        assert!(seen < 5_000, "stopped inside the segment, after {seen} documents");
        assert!(seen >= DEADLINE_EVERY as usize, "the first documents before the first look at the clock");
    }
}
