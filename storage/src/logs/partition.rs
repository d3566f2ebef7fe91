//! One time partition of the log store: a tantivy index in its own folder
//! (`<start>-<end>` in Unix seconds), with a writer opened while records
//! arrive for it.
//!
//! Each commit carries, as its payload, the last WAL sequence whose records
//! for this partition it holds; a batch at or below it is skipped on WAL
//! replay, so replay never duplicates a line. A commit is atomic (tantivy
//! swaps its `meta.json`), so a kill mid-commit leaves the previous commit,
//! whose records the WAL still has.
//!
//! The documents added since the last commit are also kept here: when a
//! write fails (disk full, read-only), tantivy kills its writer and drops
//! them; the next attempt opens a new writer and adds them again, so lines
//! acknowledged before the failure become searchable once writing works.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tantivy::directory::MmapDirectory;
use tantivy::indexer::LogMergePolicy;
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, TantivyDocument};

use super::schema::{LogFields, register_tokenizers};
use crate::StorageError;

/// How a partition's writer is sized.
#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    pub threads: usize,
    /// The indexing memory budget of the writer, all threads together.
    pub memory_bytes: usize,
}

/// Docs per doc-store block: larger blocks compress better; a hit reads one.
const DOCSTORE_BLOCK_BYTES: usize = 64 * 1024;

/// The open writer (if any) and the batches added since the last commit.
#[derive(Default)]
struct Slot {
    writer: Option<IndexWriter>,
    unsaved: Vec<(u64, Vec<TantivyDocument>)>,
    unsaved_docs: usize,
    /// The last write failed; the next one starts a new writer.
    failed: bool,
    last_write: Option<Instant>,
}

pub struct Partition {
    /// Covered time, in nanoseconds: `start..end`.
    pub start: i64,
    pub end: i64,
    pub dir: PathBuf,
    index: Index,
    pub fields: LogFields,
    reader: IndexReader,
    writer: Mutex<Slot>,
    committed_seq: AtomicU64,
}

fn tantivy_err(dir: &Path) -> impl Fn(tantivy::TantivyError) -> StorageError + '_ {
    move |e| StorageError::LogIndex(format!("{}: {e}", dir.display()))
}

impl Partition {
    /// The folder name of the partition covering `start..end` (nanoseconds).
    pub fn dir_name(start: i64, end: i64) -> String {
        format!("{}-{}", start / 1_000_000_000, end / 1_000_000_000)
    }

    /// Reads a folder name written by [`Partition::dir_name`].
    pub fn parse_dir_name(name: &str) -> Option<(i64, i64)> {
        let (s, e) = name.split_once('-')?;
        let (s, e): (i64, i64) = (s.parse().ok()?, e.parse().ok()?);
        (s < e).then_some((s.checked_mul(1_000_000_000)?, e.checked_mul(1_000_000_000)?))
    }

    /// Opens the partition's index, creating it if the folder has none.
    pub fn open(dir: PathBuf, start: i64, end: i64) -> Result<Partition, StorageError> {
        std::fs::create_dir_all(&dir).map_err(StorageError::io(&dir))?;
        let err = |e: tantivy::TantivyError| StorageError::LogIndex(format!("{}: {e}", dir.display()));
        let directory =
            MmapDirectory::open(&dir).map_err(|e| StorageError::LogIndex(format!("{}: {e}", dir.display())))?;
        let (schema, _) = LogFields::schema();
        let index = if Index::exists(&directory).map_err(|e| StorageError::LogIndex(e.to_string()))? {
            Index::open(directory).map_err(&err)?
        } else {
            Index::builder().schema(schema).settings(settings()).open_or_create(directory).map_err(&err)?
        };
        register_tokenizers(&index);
        let fields = LogFields::of(&index.schema()).map_err(&err)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(&err)?;
        let committed = index.load_metas().map_err(err)?.payload.and_then(|p| p.parse().ok()).unwrap_or(0);
        Ok(Partition {
            start,
            end,
            dir,
            index,
            fields,
            reader,
            writer: Mutex::new(Slot::default()),
            committed_seq: AtomicU64::new(committed),
        })
    }

    pub fn searcher(&self) -> tantivy::Searcher {
        self.reader.searcher()
    }

    /// Adds the documents of the batch `seq` unless a commit already holds it.
    /// Returns how many were added. A write that fails is logged and tried
    /// again with a new writer at the next add or commit; the batch is kept
    /// meanwhile (see [`Partition::unsaved_docs`]).
    pub fn add(&self, seq: u64, docs: Vec<TantivyDocument>, config: WriterConfig) -> Result<usize, StorageError> {
        if seq <= self.committed_seq.load(Ordering::Acquire) {
            return Ok(0);
        }
        let mut slot = self.writer.lock();
        let n = docs.len();
        slot.unsaved.push((seq, docs));
        slot.unsaved_docs += n;
        slot.last_write = Some(Instant::now());
        // A new writer takes every kept batch, this one included.
        let result = match &*slot {
            Slot { writer: Some(writer), unsaved, .. } => unsaved.last().map_or(Ok(()), |(_, docs)| {
                docs.iter().try_for_each(|d| writer.add_document(d.clone()).map(drop).map_err(tantivy_err(&self.dir)))
            }),
            _ => self.open_writer(&mut slot, config),
        };
        if let Err(e) = result {
            self.fail(&mut slot, &e);
        }
        Ok(n)
    }

    /// Opens a writer if there is none, adding every batch kept since the
    /// last commit.
    fn open_writer(&self, slot: &mut Slot, config: WriterConfig) -> Result<(), StorageError> {
        if slot.writer.is_some() {
            return Ok(());
        }
        let err = tantivy_err(&self.dir);
        let writer: IndexWriter =
            self.index.writer_with_num_threads(config.threads, config.memory_bytes).map_err(&err)?;
        writer.set_merge_policy(Box::new(merge_policy()));
        for (_, docs) in &slot.unsaved {
            for d in docs {
                writer.add_document(d.clone()).map_err(&err)?;
            }
        }
        slot.writer = Some(writer);
        Ok(())
    }

    fn fail(&self, slot: &mut Slot, e: &StorageError) {
        if !slot.failed {
            tracing::error!(partition = %self.dir.display(), error = %e, "log index write failed; the lines are kept and written again when it works");
        }
        slot.failed = true;
        slot.writer = None;
    }

    /// Documents acknowledged but not yet in a commit.
    pub fn unsaved_docs(&self) -> usize {
        self.writer.lock().unsaved_docs
    }

    /// Commits what was added, recording the last sequence, and makes it
    /// searchable. Returns whether there was anything to commit.
    pub fn commit(&self, config: WriterConfig) -> Result<bool, StorageError> {
        let err = tantivy_err(&self.dir);
        let mut slot = self.writer.lock();
        let Some(seq) = slot.unsaved.iter().map(|(s, _)| *s).max() else {
            return Ok(false);
        };
        let result = self.open_writer(&mut slot, config).and_then(|()| {
            let writer = slot.writer.as_mut().ok_or_else(|| StorageError::LogIndex("no writer".into()))?;
            let mut prepared = writer.prepare_commit().map_err(&err)?;
            prepared.set_payload(&seq.to_string());
            prepared.commit().map_err(&err)?;
            Ok(())
        });
        if let Err(e) = result {
            self.fail(&mut slot, &e);
            return Err(e);
        }
        if slot.failed {
            tracing::info!(partition = %self.dir.display(), "log index writes work again");
        }
        slot.unsaved.clear();
        slot.unsaved_docs = 0;
        slot.failed = false;
        self.committed_seq.fetch_max(seq, Ordering::AcqRel);
        drop(slot);
        self.reader.reload().map_err(&err)?;
        Ok(true)
    }

    /// Closes the writer (after its merges) if nothing was written for
    /// `idle`; a closed writer holds no memory.
    pub fn close_writer_if_idle(&self, idle: std::time::Duration) -> Result<(), StorageError> {
        let mut slot = self.writer.lock();
        let idle = slot.unsaved.is_empty() && slot.last_write.is_none_or(|t| t.elapsed() >= idle);
        if idle && let Some(w) = slot.writer.take() {
            w.wait_merging_threads().map_err(tantivy_err(&self.dir))?;
        }
        Ok(())
    }

    /// Drops the writer and what it holds uncommitted, as a crash would.
    #[cfg(test)]
    pub fn drop_writer(&self) {
        *self.writer.lock() = Slot::default();
    }

    /// Commits and closes the writer, waiting for its merges.
    pub fn close(&self, config: WriterConfig) -> Result<(), StorageError> {
        self.commit(config)?;
        if let Some(w) = self.writer.lock().writer.take() {
            w.wait_merging_threads().map_err(tantivy_err(&self.dir))?;
        }
        Ok(())
    }
}

fn settings() -> IndexSettings {
    IndexSettings {
        docstore_compression: Compressor::Zstd(ZstdCompressor { compression_level: Some(6) }),
        docstore_blocksize: DOCSTORE_BLOCK_BYTES,
        ..IndexSettings::default()
    }
}

/// Commits every second make many small segments: merge them in tiers of
/// ten, and stop merging segments past a few million documents so that a
/// day's partition does not rewrite itself over and over.
fn merge_policy() -> LogMergePolicy {
    let mut p = LogMergePolicy::default();
    p.set_min_num_segments(10);
    p.set_max_docs_before_merge(5_000_000);
    p.set_min_layer_size(20_000);
    p
}
