//! Assembles the spans of one trace into a tree: children ordered by start,
//! orphans (parent missing) under a synthetic root and flagged, duplicate
//! span ids tolerated, optional clock-skew adjustment, self time, the
//! critical path, and per-service counts.

use std::collections::{BTreeMap, HashMap, HashSet};

use sightline_storage::model::{Span, SpanId, StatusCode, TraceId};

/// One span in the assembled tree.
#[derive(Clone, Debug)]
pub struct Node {
    pub span: Span,
    /// Index of the parent node; `None` for roots and orphans.
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    pub depth: usize,
    /// The span names a parent that the trace does not hold.
    pub parent_missing: bool,
    /// Other spans with the same id were dropped.
    pub duplicates: usize,
    /// Shift applied to the span (and its subtree) by skew adjustment, in ns.
    pub skew_adjustment_nanos: i64,
    /// Start after adjustment.
    pub start_unix_nano: u64,
    pub self_nanos: u64,
    pub on_critical_path: bool,
}

impl Node {
    pub fn end_unix_nano(&self) -> u64 {
        self.start_unix_nano + self.span.duration_nanos()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServiceCounts {
    pub spans: u64,
    pub errors: u64,
}

#[derive(Clone, Debug)]
pub struct Trace {
    pub trace_id: TraceId,
    /// Nodes in depth-first order: each root's tree, then each orphan's.
    pub nodes: Vec<Node>,
    pub roots: Vec<usize>,
    /// Subtrees whose parent is missing, shown under a synthetic root.
    pub orphans: Vec<usize>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub services: BTreeMap<String, ServiceCounts>,
    pub truncated: bool,
    /// Parts that may hold spans of the trace and could not be read: the
    /// trace is partial when not empty.
    pub unread: Vec<String>,
}

impl Trace {
    /// Why the trace may lack spans: the parts that could not be read.
    pub fn partial_reason(&self) -> Option<String> {
        (!self.unread.is_empty()).then(|| format!("could not read {}", self.unread.join("; ")))
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }

    pub fn errors(&self) -> u64 {
        self.services.values().map(|c| c.errors).sum()
    }

    /// The root shown for the trace: the earliest real root, else the
    /// earliest orphan.
    pub fn root(&self) -> Option<&Node> {
        self.roots.first().or(self.orphans.first()).map(|&i| &self.nodes[i])
    }
}

fn host(span: &Span) -> Option<&str> {
    span.resource.attributes.get_str("host.name").or_else(|| span.resource.attributes.get_str("service.instance.id"))
}

/// Builds the tree. `adjust_skew` re-centres a child inside its parent when
/// it lies outside it and the two ran on different hosts.
pub fn assemble(trace_id: TraceId, spans: Vec<Span>, truncated: bool, adjust_skew: bool) -> Trace {
    // Keep the first span of each id; count the others.
    let mut by_id: HashMap<SpanId, usize> = HashMap::new();
    let mut unique: Vec<(Span, usize)> = Vec::with_capacity(spans.len());
    for span in spans {
        match by_id.get(&span.span_id) {
            Some(&i) => unique[i].1 += 1,
            None => {
                by_id.insert(span.span_id, unique.len());
                unique.push((span, 0));
            }
        }
    }
    // Parent links, and the spans that start trees.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); unique.len()];
    let mut roots = Vec::new();
    let mut orphans = Vec::new();
    for (i, (span, _)) in unique.iter().enumerate() {
        match span.parent_span_id {
            None => roots.push(i),
            Some(p) => match by_id.get(&p) {
                Some(&parent) if parent != i => children[parent].push(i),
                _ => orphans.push(i),
            },
        }
    }
    let start_of = |i: &usize| (unique[*i].0.start_unix_nano, unique[*i].0.span_id);
    for c in &mut children {
        c.sort_by_key(start_of);
    }
    roots.sort_by_key(start_of);
    orphans.sort_by_key(start_of);

    // Depth-first walk; spans in a parent cycle are never reached from a
    // root, so they become orphans too.
    let mut order: Vec<(usize, Option<usize>, usize, bool)> = Vec::with_capacity(unique.len());
    let mut seen = HashSet::new();
    let walk = |start: usize, missing: bool, order: &mut Vec<_>, seen: &mut HashSet<usize>| {
        let mut stack = vec![(start, None, 0usize)];
        while let Some((i, parent, depth)) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            order.push((i, parent, depth, missing && parent.is_none()));
            for &c in children[i].iter().rev() {
                stack.push((c, Some(i), depth + 1));
            }
        }
    };
    for &r in &roots {
        walk(r, false, &mut order, &mut seen);
    }
    for &o in &orphans {
        walk(o, true, &mut order, &mut seen);
    }
    for i in 0..unique.len() {
        if !seen.contains(&i) {
            orphans.push(i);
            walk(i, true, &mut order, &mut seen);
        }
    }

    // Nodes in walk order; map original indexes to node indexes.
    let mut position = vec![0usize; unique.len()];
    for (n, (i, ..)) in order.iter().enumerate() {
        position[*i] = n;
    }
    let mut slots: Vec<Option<(Span, usize)>> = unique.into_iter().map(Some).collect();
    let mut nodes: Vec<Node> = Vec::with_capacity(order.len());
    for (i, parent, depth, missing) in &order {
        let Some((span, duplicates)) = slots[*i].take() else { continue };
        nodes.push(Node {
            start_unix_nano: span.start_unix_nano,
            span,
            parent: parent.map(|p| position[p]),
            children: Vec::new(),
            depth: *depth,
            parent_missing: *missing,
            duplicates,
            skew_adjustment_nanos: 0,
            self_nanos: 0,
            on_critical_path: false,
        });
    }
    // Children from the walk's tree edges only: a parent cycle has no edge here.
    for n in 0..nodes.len() {
        if let Some(p) = nodes[n].parent {
            nodes[p].children.push(n);
        }
    }
    let roots: Vec<usize> = roots.iter().map(|r| position[*r]).collect();
    let orphans: Vec<usize> = orphans.iter().map(|o| position[*o]).collect();

    if adjust_skew {
        adjust(&mut nodes);
    }
    for n in 0..nodes.len() {
        nodes[n].self_nanos = self_time(&nodes, n);
    }
    let tops: Vec<usize> = roots.iter().chain(&orphans).copied().collect();
    if let Some(&top) =
        tops.iter().max_by_key(|&&t| (nodes[t].end_unix_nano(), std::cmp::Reverse(nodes[t].start_unix_nano)))
    {
        mark_critical_path(&mut nodes, top);
    }
    let mut services: BTreeMap<String, ServiceCounts> = BTreeMap::new();
    for n in &nodes {
        let c = services.entry(n.span.resource.service.clone()).or_default();
        c.spans += 1;
        c.errors += u64::from(n.span.status_code == StatusCode::Error);
    }
    Trace {
        trace_id,
        start_unix_nano: nodes.iter().map(|n| n.start_unix_nano).min().unwrap_or(0),
        end_unix_nano: nodes.iter().map(Node::end_unix_nano).max().unwrap_or(0),
        nodes,
        roots,
        orphans,
        services,
        truncated,
        unread: Vec::new(),
    }
}

/// Shifts children that lie outside their parent onto its middle, when
/// parent and child ran on different hosts; the subtree moves with them.
/// Nodes are in depth-first order, so parents are adjusted first.
fn adjust(nodes: &mut [Node]) {
    for n in 0..nodes.len() {
        let Some(p) = nodes[n].parent else { continue };
        let inherited = nodes[p].skew_adjustment_nanos;
        let start = nodes[n].span.start_unix_nano as i64 + inherited;
        let duration = nodes[n].span.duration_nanos() as i64;
        let (p_start, p_duration) = (nodes[p].start_unix_nano as i64, nodes[p].span.duration_nanos() as i64);
        let outside = start < p_start || start + duration > p_start + p_duration;
        let different_hosts = matches!((host(&nodes[n].span), host(&nodes[p].span)), (Some(a), Some(b)) if a != b);
        let shift = if outside && different_hosts && duration <= p_duration {
            p_start + (p_duration - duration) / 2 - start
        } else {
            0
        };
        nodes[n].skew_adjustment_nanos = inherited + shift;
        nodes[n].start_unix_nano = (start + shift).max(0) as u64;
    }
}

/// Duration not covered by any child, children clipped to the span.
fn self_time(nodes: &[Node], n: usize) -> u64 {
    let (start, end) = (nodes[n].start_unix_nano, nodes[n].end_unix_nano());
    let mut intervals: Vec<(u64, u64)> = nodes[n]
        .children
        .iter()
        .map(|&c| (nodes[c].start_unix_nano.max(start), nodes[c].end_unix_nano().min(end)))
        .filter(|(s, e)| s < e)
        .collect();
    intervals.sort_unstable();
    let mut covered = 0;
    let mut cursor = start;
    for (s, e) in intervals {
        let s = s.max(cursor);
        if e > s {
            covered += e - s;
            cursor = e;
        }
    }
    (end - start).saturating_sub(covered)
}

/// The critical path: from the span, the child that finished last, then
/// going back in time the child that finished last before that one
/// started, and so on, recursively. A child that ends after its parent is
/// cut at the parent's end, as if the parent had waited for it.
fn mark_critical_path(nodes: &mut [Node], top: usize) {
    let mut stack = vec![(top, nodes[top].end_unix_nano())];
    while let Some((n, window_end)) = stack.pop() {
        nodes[n].on_critical_path = true;
        let end = |c: usize, nodes: &[Node]| nodes[c].end_unix_nano().min(window_end);
        let mut children: Vec<usize> = nodes[n].children.clone();
        children.sort_by_key(|&c| std::cmp::Reverse(end(c, nodes)));
        let mut cursor = window_end;
        for c in children {
            if end(c, nodes) <= cursor {
                stack.push((c, end(c, nodes)));
                cursor = nodes[c].start_unix_nano;
            }
        }
    }
}

#[cfg(test)]
mod tests;
