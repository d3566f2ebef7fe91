//! The span store's maintenance: parts past retention deleted, and the
//! parts of each compaction window merged (streaming, at most
//! [`MAX_MERGE_INPUTS`] at once) into one, published before its inputs are
//! retired.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{Inner, MAX_MERGE_INPUTS, MERGE_BATCH_ROWS, RETIRED_GRACE};
use crate::StorageError;
use crate::model::Tenant;
use crate::spans::dedicated::Dedicated;
use crate::spans::part::{self, PartMeta};
use crate::spans::write::{self, PartWriter};

impl Inner {
    /// Retention, then compaction of windows with enough parts.
    pub(super) fn maintain(&self) -> Result<(), StorageError> {
        let _work = self.maintenance_work.lock();
        let due: Vec<(Instant, Tenant, String)> = {
            let mut retired = self.retired.lock();
            let now = Instant::now();
            let (due, keep) = retired.drain(..).partition(|(at, _, _)| *at <= now);
            *retired = keep;
            due
        };
        for (_, tenant, id) in due {
            self.runtime.block_on(part::delete(self.store.as_ref(), tenant.as_str(), &id))?;
        }
        self.update_gauges();
        let cutoff = crate::model::now_unix_nanos().saturating_sub(self.config.retention.as_nanos() as u64);
        let expired: Vec<(Tenant, PartMeta)> = {
            let state = self.state.read();
            state
                .parts
                .iter()
                .flat_map(|(t, ps)| ps.iter().filter(|p| p.max_end_unix_nano < cutoff).map(|p| (t.clone(), p.clone())))
                .collect()
        };
        for (tenant, meta) in expired {
            self.forget(&tenant, std::slice::from_ref(&meta.id));
            self.runtime.block_on(part::delete(self.store.as_ref(), tenant.as_str(), &meta.id))?;
            tracing::info!(part = %meta.id, %tenant, spans = meta.spans, "deleted a span part past retention");
            self.telemetry.expired_parts.inc();
            self.update_gauges();
        }
        let window = self.config.compaction_window.as_nanos().max(1) as u64;
        let groups: Vec<(Tenant, Vec<PartMeta>)> = {
            let state = self.state.read();
            let mut groups = Vec::new();
            for (tenant, parts) in &state.parts {
                let mut by_window: BTreeMap<u64, Vec<PartMeta>> = BTreeMap::new();
                for p in parts {
                    by_window.entry(p.min_start_unix_nano / window).or_default().push(p.clone());
                }
                for mut window in by_window.into_values() {
                    // The smallest parts first, in merges of at most
                    // MAX_MERGE_INPUTS parts and the span cap.
                    window.sort_by_key(|p| p.spans);
                    let mut merge: Vec<PartMeta> = Vec::new();
                    let mut total = 0;
                    for p in window {
                        total += p.spans;
                        if total > self.config.compaction_max_spans as u64 {
                            break;
                        }
                        merge.push(p);
                        if merge.len() == MAX_MERGE_INPUTS {
                            groups.push((tenant.clone(), std::mem::take(&mut merge)));
                            total = 0;
                        }
                    }
                    if merge.len() >= self.config.compaction_min_parts {
                        groups.push((tenant.clone(), merge));
                    }
                }
            }
            groups
        };
        for (tenant, inputs) in groups {
            self.compact(&tenant, inputs)?;
        }
        Ok(())
    }

    /// Merges parts into one (a streaming merge of their sorted rows), then deletes them.
    fn compact(&self, tenant: &Tenant, inputs: Vec<PartMeta>) -> Result<(), StorageError> {
        let level = inputs.iter().map(|m| m.level).max().unwrap_or(0) + 1;
        let max_seq = inputs.iter().map(|m| m.max_wal_seq).max().unwrap_or(0);
        let rows = self.config.row_group_rows;
        let mut encoded = self.runtime.block_on(async {
            let mut streams = Vec::with_capacity(inputs.len());
            for m in &inputs {
                let index = self.index(m).await?;
                streams.push((part::stream(self.store.clone(), m, &index, MERGE_BATCH_ROWS)?, index.resources.clone()));
            }
            let dedicated = Dedicated::merged(inputs.iter().map(|m| (&m.dedicated, m.spans)));
            let mut writer = PartWriter::new(level, rows, dedicated)?;
            write::merge(streams, &mut writer, rows).await?;
            writer.finish(tenant, self.part_id(), max_seq)
        })?;
        encoded.meta.compacted_from = inputs.iter().map(|m| m.id.clone()).collect();
        encoded.meta.wal_marks = merged_marks(&inputs);
        let meta = self.runtime.block_on(part::publish(self.store.as_ref(), encoded))?;
        {
            let mut state = self.state.write();
            let parts = state.parts.entry(tenant.clone()).or_default();
            parts.retain(|p| !meta.compacted_from.contains(&p.id));
            parts.push(meta.clone());
        }
        {
            let mut indexes = self.indexes.lock();
            for id in &meta.compacted_from {
                indexes.remove(id);
            }
        }
        let due = Instant::now() + RETIRED_GRACE;
        self.retired.lock().extend(inputs.iter().map(|m| (due, tenant.clone(), m.id.clone())));
        tracing::info!(part = %meta.id, %tenant, inputs = inputs.len(), spans = meta.spans, "compacted span parts");
        self.telemetry.compactions.inc();
        self.update_gauges();
        Ok(())
    }

    pub(super) fn forget(&self, tenant: &Tenant, ids: &[String]) {
        if let Some(parts) = self.state.write().parts.get_mut(tenant) {
            parts.retain(|p| !ids.contains(&p.id));
        }
        let mut indexes = self.indexes.lock();
        for id in ids {
            indexes.remove(id);
        }
    }
}

/// The WAL marks of a part merged from `inputs`: the highest of each shard's.
fn merged_marks(inputs: &[PartMeta]) -> Vec<part::WalMark> {
    let mut marks: Vec<part::WalMark> = Vec::new();
    for m in inputs.iter().flat_map(PartMeta::marks) {
        part::WalMark::raise(&mut marks, m);
    }
    marks.sort_by_key(|m| (m.of, m.shard));
    marks
}
