//! The read side of the log store: searches, counts over time and top
//! values, each over the partitions that its time range overlaps.

use std::sync::Arc;
use std::time::Instant;

use tantivy::collector::{Collector, Count, SegmentCollector};
use tantivy::query::EnableScoring;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DocAddress, Searcher, SegmentOrdinal, TantivyDocument, Term};

use super::collect::{Deadlined, Histogram, Newest, SortKey, TimeRange, TopField, TopValues};
use super::partition::Partition;
use super::query::{LogExpr, highlights};
use super::schema::decode_record;
use super::store::LogStore;
use crate::StorageError;
use crate::model::{LogRecord, Tenant};

/// Addresses one page of [`LogStore::scan`] reads.
pub const SCAN_PAGE: usize = 16_384;

/// A search: the newest (or oldest) `limit` matches in a time range,
/// strictly after `after` in that order (the cursor of a previous page).
#[derive(Clone, Debug)]
pub struct LogSearch {
    pub tenant: Tenant,
    pub expr: LogExpr,
    pub range: TimeRange,
    pub limit: usize,
    pub newest_first: bool,
    pub after: Option<SortKey>,
}

#[derive(Clone, Debug)]
pub struct LogHit {
    pub key: SortKey,
    pub record: LogRecord,
    /// What the query matched in the body, as UTF-16 offsets.
    pub highlights: Vec<(usize, usize)>,
}

fn err(e: tantivy::TantivyError) -> StorageError {
    StorageError::LogIndex(e.to_string())
}

/// The query restricted to a tenant.
fn tenant_query(p: &Partition, tenant: &Tenant, expr: &LogExpr) -> BooleanQuery {
    let tenant = Term::from_field_text(p.fields.tenant, tenant.as_str());
    BooleanQuery::new(vec![
        (Occur::Must, Box::new(TermQuery::new(tenant, IndexRecordOption::Basic)) as Box<dyn Query>),
        (Occur::Must, expr.to_query(&p.fields)),
    ])
}

/// Err once `deadline` has passed: reads check it between partitions.
fn check(deadline: Option<Instant>) -> Result<(), StorageError> {
    if deadline.is_some_and(|d| Instant::now() >= d) { Err(StorageError::Deadline) } else { Ok(()) }
}

/// Runs `collector` over one partition, stopped inside it at `deadline`:
/// over the segments whose lines can fall in `range` (a segment's oldest
/// and newest line bound its timestamp column), in `order`, skipping a
/// segment when `beaten` says the fruits so far cannot be bettered by
/// lines between its bounds.
fn collect_segments<C: Collector>(
    p: &Partition,
    searcher: &Searcher,
    tenant: &Tenant,
    expr: &LogExpr,
    collector: C,
    (range, newest_first, deadline): (TimeRange, bool, Option<Instant>),
    beaten: impl Fn(&[<C::Child as SegmentCollector>::Fruit], i64, i64) -> bool,
) -> Result<C::Fruit, StorageError> {
    let deadlined = Deadlined::new(collector, deadline);
    let run = || -> tantivy::Result<C::Fruit> {
        let weight = tenant_query(p, tenant, expr).weight(EnableScoring::disabled_from_searcher(searcher))?;
        let mut segments = Vec::new();
        for (ord, reader) in searcher.segment_readers().iter().enumerate() {
            if let Some(ts) = reader.fast_fields().column_opt::<i64>("timestamp")? {
                let (oldest, newest) = (ts.min_value(), ts.max_value());
                if oldest <= range.end && range.start <= newest {
                    segments.push((ord as SegmentOrdinal, oldest, newest));
                }
            }
        }
        segments.sort_by(|a, b| if newest_first { b.2.cmp(&a.2) } else { a.1.cmp(&b.1) });
        let mut fruits = Vec::with_capacity(segments.len());
        for (ord, oldest, newest) in segments {
            if !beaten(&fruits, oldest, newest) {
                fruits.push(deadlined.collect_segment(weight.as_ref(), ord, searcher.segment_reader(ord))?);
            }
        }
        deadlined.merge_fruits(fruits)
    };
    match run() {
        Ok(fruit) => Ok(fruit),
        Err(_) if deadlined.passed() => Err(StorageError::Deadline),
        Err(e) => Err(err(e)),
    }
}

/// [`collect_segments`] for a collector that wants every matching line.
fn collect<C: Collector>(
    p: &Partition,
    searcher: &Searcher,
    tenant: &Tenant,
    expr: &LogExpr,
    collector: C,
    range: TimeRange,
    deadline: Option<Instant>,
) -> Result<C::Fruit, StorageError> {
    collect_segments(p, searcher, tenant, expr, collector, (range, true, deadline), |_, _, _| false)
}

/// The first `limit` matches in a search's order: segments newest (oldest)
/// first, and a segment whose lines are all older (newer) than the
/// `limit`-th found so far is not read.
fn collect_newest(
    p: &Partition,
    searcher: &Searcher,
    tenant: &Tenant,
    expr: &LogExpr,
    newest: Newest,
    deadline: Option<Instant>,
) -> Result<Vec<(SortKey, DocAddress)>, StorageError> {
    let (limit, newest_first) = (newest.limit, newest.newest_first);
    let beaten = |fruits: &[Vec<(SortKey, DocAddress)>], oldest: i64, newest: i64| {
        let mut found: Vec<i64> = fruits.iter().flatten().map(|(k, _)| k.ts).collect();
        if found.len() < limit || limit == 0 {
            return limit == 0;
        }
        if newest_first {
            let (_, kth, _) = found.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a));
            *kth > newest
        } else {
            let (_, kth, _) = found.select_nth_unstable(limit - 1);
            *kth < oldest
        }
    };
    let order = (newest.range, newest_first, deadline);
    collect_segments(p, searcher, tenant, expr, newest, order, beaten)
}

impl LogStore {
    /// The partitions overlapping a range, newest first.
    fn overlapping(&self, range: TimeRange) -> Vec<Arc<Partition>> {
        let map = self.inner.partitions.read();
        map.values().rev().filter(|p| p.start <= range.end && range.start < p.end).cloned().collect()
    }

    /// Stops with [`StorageError::Deadline`] at `deadline` (checked before
    /// each partition, and inside one as it is read).
    pub fn search(&self, s: &LogSearch, deadline: Option<Instant>) -> Result<Vec<LogHit>, StorageError> {
        let mut partitions = self.overlapping(s.range);
        if !s.newest_first {
            partitions.reverse();
        }
        let patterns = s.expr.body_patterns();
        let mut hits = Vec::new();
        for p in partitions {
            if hits.len() >= s.limit {
                // Partitions do not overlap: every later one comes after these hits.
                break;
            }
            check(deadline)?;
            let searcher = p.searcher();
            let collector =
                Newest { limit: s.limit - hits.len(), range: s.range, newest_first: s.newest_first, after: s.after };
            let found = collect_newest(&p, &searcher, &s.tenant, &s.expr, collector, deadline)?;
            for (key, address) in found {
                let doc: TantivyDocument = searcher.doc(address).map_err(err)?;
                let record = doc.get_first(p.fields.record).and_then(|v| v.as_bytes()).and_then(decode_record);
                let Some(record) = record else {
                    return Err(StorageError::LogIndex(format!("{}: a stored record is unreadable", p.dir.display())));
                };
                let highlights = match &record.body {
                    crate::model::AttrValue::Str(body) => highlights(body, &patterns),
                    _ => Vec::new(),
                };
                hits.push(LogHit { key, record, highlights });
            }
        }
        Ok(hits)
    }

    /// Every match in `range` strictly after `after`, oldest first, handed
    /// to `each` until it answers false. Matches are read in pages of
    /// [`SCAN_PAGE`], so a scan of millions of lines holds one page of
    /// records, not the lines.
    pub fn scan(
        &self,
        tenant: &Tenant,
        expr: &LogExpr,
        range: TimeRange,
        mut after: Option<SortKey>,
        deadline: Option<Instant>,
        mut each: impl FnMut(SortKey, LogRecord) -> bool,
    ) -> Result<(), StorageError> {
        let mut partitions = self.overlapping(range);
        partitions.reverse();
        for p in partitions {
            let searcher = p.searcher();
            loop {
                check(deadline)?;
                let collector = Newest { limit: SCAN_PAGE, range, newest_first: false, after };
                let found = collect_newest(&p, &searcher, tenant, expr, collector, deadline)?;
                let full = found.len() == SCAN_PAGE;
                // Read in the doc store's order, so that each compressed block is
                // opened once (time order jumps between blocks and segments).
                let mut order: Vec<usize> = (0..found.len()).collect();
                order.sort_unstable_by_key(|&i| (found[i].1.segment_ord, found[i].1.doc_id));
                let mut records: Vec<Option<LogRecord>> = vec![None; found.len()];
                for (n, &i) in order.iter().enumerate() {
                    if n % 4096 == 4095 {
                        check(deadline)?;
                    }
                    let doc: TantivyDocument = searcher.doc(found[i].1).map_err(err)?;
                    let record = doc.get_first(p.fields.record).and_then(|v| v.as_bytes()).and_then(decode_record);
                    let Some(record) = record else {
                        let at = p.dir.display();
                        return Err(StorageError::LogIndex(format!("{at}: a stored record is unreadable")));
                    };
                    records[i] = Some(record);
                }
                for ((key, _), record) in found.into_iter().zip(records) {
                    after = Some(key);
                    if let Some(record) = record
                        && !each(key, record)
                    {
                        return Ok(());
                    }
                }
                if !full {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Counts of matches per `step` nanoseconds from `range.start`.
    pub fn histogram(
        &self,
        tenant: &Tenant,
        expr: &LogExpr,
        range: TimeRange,
        step: i64,
        deadline: Option<Instant>,
    ) -> Result<Vec<u64>, StorageError> {
        let step = step.max(1);
        let buckets = usize::try_from((range.end - range.start) / step + 1).unwrap_or(0);
        let collector = Histogram { range, step, buckets };
        let mut total = vec![0u64; buckets];
        for p in self.overlapping(range) {
            check(deadline)?;
            let counts = collect(&p, &p.searcher(), tenant, expr, collector.clone(), range, deadline)?;
            total.iter_mut().zip(counts).for_each(|(t, c)| *t += c);
        }
        Ok(total)
    }

    /// The most frequent values of a field among the matches, most first.
    pub fn top_values(
        &self,
        tenant: &Tenant,
        expr: &LogExpr,
        range: TimeRange,
        field: TopField,
        limit: usize,
        deadline: Option<Instant>,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let collector = TopValues { range, field };
        let mut total = std::collections::HashMap::<String, u64>::new();
        for p in self.overlapping(range) {
            check(deadline)?;
            for (k, v) in collect(&p, &p.searcher(), tenant, expr, collector.clone(), range, deadline)? {
                *total.entry(k).or_default() += v;
            }
        }
        let mut top: Vec<_> = total.into_iter().collect();
        top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(limit);
        Ok(top)
    }

    /// Searchable lines of a tenant.
    pub fn count(&self, tenant: &Tenant) -> Result<u64, StorageError> {
        let all = TimeRange { start: i64::MIN, end: i64::MAX };
        let mut n = 0;
        for p in self.overlapping(all) {
            n += p.searcher().search(&tenant_query(&p, tenant, &LogExpr::All), &Count).map_err(err)? as u64;
        }
        Ok(n)
    }
}
