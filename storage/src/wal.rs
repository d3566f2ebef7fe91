//! The write-ahead log: every accepted item is appended here before the client
//! is told it was accepted.
//!
//! One writer thread owns the active segment. Appenders hand it requests
//! through a bounded channel (full means overload, refused at once); the
//! thread drains whatever is waiting, writes it as one batch, fsyncs per the
//! [`FsyncPolicy`] (group commit: one fsync for the whole batch, never one per
//! item) and then calls each request's completion in sequence order. So the
//! consumers that a completion feeds see each signal in WAL order.
//!
//! Segments are removed only when every signal they hold has been released by
//! its store ([`Wal::release`]): the store has durably taken those items.
//! After a crash, [`Wal::open`] truncates a torn tail and hands back every
//! record for replay; new records always go to a fresh segment.

mod segment;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use segment::{Format, WalRecord};

use crate::StorageError;
use crate::model::{Signal, Tenant};

/// When the log is fsynced, relative to acknowledging the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Group commit: each batch of waiting appends is fsynced once, then acknowledged.
    Batch,
    /// Acknowledge once written to the OS (survives a process crash); fsync at
    /// least this often (survives power loss up to the interval).
    Interval(Duration),
    /// Never fsync (tests and benchmarks only).
    Never,
}

#[derive(Clone, Debug)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
    /// Appends that may wait for the writer thread before new ones are refused.
    pub queue_capacity: usize,
}

/// Called once an append is durable (per the policy) with its sequence
/// number, or with the error that prevented it.
pub type Completion = Box<dyn FnOnce(Result<u64, StorageError>) + Send>;

struct Request {
    signal: Signal,
    format: Format,
    tenant: Tenant,
    payload: Bytes,
    done: Completion,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the write-ahead log queue is full")]
    Full,
    #[error("the write-ahead log is closed")]
    Closed,
}

crate::telemetry! {
    /// The log's own metrics, served on `/metrics`.
    struct WalTelemetry("sightline_wal") {
        /// Bytes appended to the write-ahead log
        written_bytes: Counter,
        /// Records appended to the write-ahead log
        records: Counter,
        /// Latency of write-ahead log fsyncs
        fsync_seconds: Histogram = Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
        /// Write-ahead log segment files on disk
        segments: Gauge,
        /// Failed write-ahead log writes
        write_errors: Counter,
    }
}

struct SegmentInfo {
    path: PathBuf,
    /// The highest sequence number of each signal in the segment.
    max: [Option<u64>; 3],
    /// False until replay (or the writer) has seen every record in it.
    scanned: bool,
}

/// Which segments exist and what each holds; decides which can be deleted.
#[derive(Default)]
struct Ledger {
    segments: BTreeMap<u64, SegmentInfo>,
    /// Per signal: every record up to this sequence is durable in its store.
    released: [u64; 3],
    active_first_seq: u64,
}

impl Ledger {
    fn note(&mut self, first_seq: u64, signal: Signal, seq: u64) {
        if let Some(info) = self.segments.get_mut(&first_seq) {
            let slot = &mut info.max[signal as usize];
            *slot = Some(slot.map_or(seq, |m| m.max(seq)));
        }
    }

    /// Removes and returns the closed segments whose every record has been released.
    fn take_releasable(&mut self) -> Vec<PathBuf> {
        let released = self.released;
        let active = self.active_first_seq;
        let done: Vec<u64> = self
            .segments
            .iter()
            .filter(|(first, info)| {
                **first != active
                    && info.scanned
                    && info.max.iter().zip(released).all(|(m, r)| m.is_none_or(|m| m <= r))
            })
            .map(|(first, _)| *first)
            .collect();
        done.iter().filter_map(|f| self.segments.remove(f)).map(|i| i.path).collect()
    }
}

enum Msg {
    Append(Request),
    Shutdown,
}

/// Handle to the write-ahead log; cheap to clone.
#[derive(Clone)]
pub struct Wal {
    tx: SyncSender<Msg>,
    ledger: Arc<Mutex<Ledger>>,
    telemetry: WalTelemetry,
    writer: Arc<Mutex<Option<thread::JoinHandle<()>>>>,
}

impl Wal {
    /// Opens (or creates) the log in `config.dir`: truncates a torn tail,
    /// starts the writer thread on a fresh segment, and returns the handle
    /// with a [`Replay`] of every record already on disk, oldest first.
    pub fn open(config: WalConfig, registry: &mut Registry) -> Result<(Wal, Replay), StorageError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(StorageError::io(&dir))?;
        let telemetry = WalTelemetry::default();
        telemetry.register(registry);
        let mut existing: Vec<(u64, PathBuf)> = fs::read_dir(&dir)
            .map_err(StorageError::io(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                segment::parse_file_name(name.to_str()?).map(|seq| (seq, e.path()))
            })
            .collect();
        existing.sort();

        let mut next_seq = 1;
        if let Some((first, path)) = existing.last() {
            // Never reuse the name of a segment that is on disk.
            next_seq = first + 1;
            let data = fs::read(path).map_err(StorageError::io(path))?;
            match segment::Reader::new(Bytes::from(data)) {
                Some(mut reader) => {
                    if let Some(last) = reader.by_ref().last() {
                        next_seq = last.seq + 1;
                    }
                    if reader.damaged() {
                        tracing::warn!(path = %path.display(), valid_bytes = reader.valid_len(), "truncating torn tail of the write-ahead log");
                        let f = OpenOptions::new().write(true).open(path).map_err(StorageError::io(path))?;
                        f.set_len(reader.valid_len() as u64).map_err(StorageError::io(path))?;
                        f.sync_all().map_err(StorageError::io(path))?;
                    }
                }
                None => {
                    tracing::warn!(path = %path.display(), "ignoring a write-ahead log segment without a valid header")
                }
            }
        }

        let mut ledger = Ledger::default();
        for (first, path) in &existing {
            ledger.segments.insert(*first, SegmentInfo { path: path.clone(), max: [None; 3], scanned: false });
        }
        let ledger = Arc::new(Mutex::new(ledger));
        let writer = Writer::create(config.clone(), next_seq, ledger.clone(), telemetry.clone())?;
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
        let handle =
            thread::Builder::new().name("wal".into()).spawn(move || writer.run(rx)).map_err(StorageError::io(&dir))?;
        let replay = Replay { segments: existing, index: 0, current: None, ledger: ledger.clone() };
        let wal = Wal { tx, ledger, telemetry, writer: Arc::new(Mutex::new(Some(handle))) };
        Ok((wal, replay))
    }

    /// Queues one append; `done` runs on the writer thread once it is durable.
    /// Never blocks: a full queue is refused so that the caller can answer "retry".
    pub fn append(
        &self,
        (signal, format): (Signal, Format),
        tenant: Tenant,
        payload: Bytes,
        done: Completion,
    ) -> Result<(), AppendError> {
        match self.tx.try_send(Msg::Append(Request { signal, format, tenant, payload, done })) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(AppendError::Full),
            Err(TrySendError::Disconnected(_)) => Err(AppendError::Closed),
        }
    }

    /// Marks every record of `signal` up to `seq` as durably held by its
    /// store, and deletes the closed segments that hold nothing unreleased.
    /// Returns how many segments were deleted.
    pub fn release(&self, signal: Signal, seq: u64) -> Result<usize, StorageError> {
        let paths = {
            let mut l = self.ledger.lock();
            let r = &mut l.released[signal as usize];
            *r = (*r).max(seq);
            l.take_releasable()
        };
        for path in &paths {
            fs::remove_file(path).map_err(StorageError::io(path))?;
        }
        self.telemetry.segments.set(self.ledger.lock().segments.len() as i64);
        Ok(paths.len())
    }

    /// Writes and fsyncs what is queued, then stops the writer thread.
    /// Appends after this are refused as closed. Blocks; idempotent.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

/// Every record found on disk at open, oldest first. Reading a segment to its
/// end lets [`Wal::release`] delete it once its records are released.
pub struct Replay {
    segments: Vec<(u64, PathBuf)>,
    index: usize,
    current: Option<(u64, segment::Reader)>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Iterator for Replay {
    type Item = Result<WalRecord, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((first, reader)) = &mut self.current {
                if let Some(record) = reader.next() {
                    self.ledger.lock().note(*first, record.signal, record.seq);
                    return Some(Ok(record));
                }
                if reader.damaged() {
                    tracing::warn!(
                        segment = *first,
                        "write-ahead log segment damaged; records after the damage are skipped"
                    );
                }
                if let Some(info) = self.ledger.lock().segments.get_mut(first) {
                    info.scanned = true;
                }
                self.current = None;
            }
            let (first, path) = self.segments.get(self.index)?.clone();
            self.index += 1;
            let data = match fs::read(&path) {
                Ok(d) => d,
                Err(e) => return Some(Err(StorageError::Io { path, source: e })),
            };
            match segment::Reader::new(Bytes::from(data)) {
                Some(reader) => self.current = Some((first, reader)),
                None => {
                    if let Some(info) = self.ledger.lock().segments.get_mut(&first) {
                        info.scanned = true;
                    }
                }
            }
        }
    }
}

/// The writer thread's state: the active segment.
struct Writer {
    config: WalConfig,
    file: File,
    first_seq: u64,
    len: u64,
    next_seq: u64,
    dirty: bool,
    last_sync: Instant,
    buf: Vec<u8>,
    ledger: Arc<Mutex<Ledger>>,
    telemetry: WalTelemetry,
}

impl Writer {
    fn create(
        config: WalConfig,
        next_seq: u64,
        ledger: Arc<Mutex<Ledger>>,
        telemetry: WalTelemetry,
    ) -> Result<Self, StorageError> {
        let (file, path) = new_segment(&config.dir, next_seq)?;
        {
            let mut l = ledger.lock();
            l.segments.insert(next_seq, SegmentInfo { path, max: [None; 3], scanned: true });
            l.active_first_seq = next_seq;
            telemetry.segments.set(l.segments.len() as i64);
        }
        Ok(Self {
            config,
            file,
            first_seq: next_seq,
            len: segment::MAGIC.len() as u64,
            next_seq,
            dirty: false,
            last_sync: Instant::now(),
            buf: Vec::with_capacity(1 << 20),
            ledger,
            telemetry,
        })
    }

    fn run(mut self, rx: Receiver<Msg>) {
        const MAX_BATCH: usize = 4096;
        loop {
            let wait = match self.config.fsync {
                FsyncPolicy::Interval(every) if self.dirty => every.saturating_sub(self.last_sync.elapsed()),
                _ => Duration::from_secs(3600),
            };
            let first = match rx.recv_timeout(wait) {
                Ok(Msg::Append(r)) => r,
                Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.sync();
                    continue;
                }
            };
            let mut batch = vec![first];
            let mut stop = false;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Msg::Append(r)) => batch.push(r),
                    Ok(Msg::Shutdown) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.write_batch(batch);
            if stop {
                break;
            }
        }
        // Whatever is still queued is written before the thread ends.
        let rest: Vec<Request> = rx
            .try_iter()
            .filter_map(|m| match m {
                Msg::Append(r) => Some(r),
                Msg::Shutdown => None,
            })
            .collect();
        if !rest.is_empty() {
            self.write_batch(rest);
        }
        if let Err(e) = self.sync() {
            tracing::error!(error = %e, "final write-ahead log fsync failed");
        }
    }

    fn write_batch(&mut self, batch: Vec<Request>) {
        if self.len >= self.config.segment_bytes
            && let Err(e) = self.roll()
        {
            tracing::error!(error = %e, "cannot start a new write-ahead log segment");
            self.telemetry.write_errors.inc();
            return fail_all(batch, &e);
        }
        self.buf.clear();
        let mut seqs = Vec::with_capacity(batch.len());
        for req in &batch {
            let seq = self.next_seq;
            self.next_seq += 1;
            segment::encode(&mut self.buf, seq, (req.signal, req.format), &req.tenant, &req.payload);
            seqs.push(seq);
        }
        let result = self.file.write_all(&self.buf).and_then(|()| match self.config.fsync {
            FsyncPolicy::Batch => self.sync_now(),
            FsyncPolicy::Interval(every) if self.last_sync.elapsed() >= every => self.sync_now(),
            _ => Ok(()),
        });
        if let Err(e) = result {
            self.telemetry.write_errors.inc();
            tracing::error!(error = %e, "write-ahead log write failed; the batch is refused");
            // Cut back to the last good record so that the segment stays readable.
            let _ = self.file.set_len(self.len).and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(drop));
            let err = StorageError::Io { path: self.path(), source: e };
            return fail_all(batch, &err);
        }
        self.len += self.buf.len() as u64;
        self.dirty = self.config.fsync != FsyncPolicy::Batch;
        self.telemetry.written_bytes.inc_by(self.buf.len() as u64);
        self.telemetry.records.inc_by(batch.len() as u64);
        {
            let mut l = self.ledger.lock();
            for (req, seq) in batch.iter().zip(&seqs) {
                l.note(self.first_seq, req.signal, *seq);
            }
        }
        for (req, seq) in batch.into_iter().zip(seqs) {
            (req.done)(Ok(seq));
        }
    }

    fn sync_now(&mut self) -> std::io::Result<()> {
        let start = Instant::now();
        self.file.sync_data()?;
        self.telemetry.fsync_seconds.observe(start.elapsed().as_secs_f64());
        self.last_sync = Instant::now();
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.dirty && self.config.fsync != FsyncPolicy::Never {
            self.sync_now()?;
        }
        self.dirty = false;
        Ok(())
    }

    fn path(&self) -> PathBuf {
        self.config.dir.join(segment::file_name(self.first_seq))
    }

    /// Closes the active segment and starts the next one.
    fn roll(&mut self) -> Result<(), StorageError> {
        if self.config.fsync != FsyncPolicy::Never {
            self.file.sync_all().map_err(StorageError::io(self.path()))?;
        }
        let (file, path) = new_segment(&self.config.dir, self.next_seq)?;
        self.file = file;
        self.first_seq = self.next_seq;
        self.len = segment::MAGIC.len() as u64;
        self.dirty = false;
        let doomed = {
            let mut l = self.ledger.lock();
            l.segments.insert(self.first_seq, SegmentInfo { path, max: [None; 3], scanned: true });
            l.active_first_seq = self.first_seq;
            l.take_releasable()
        };
        for path in doomed {
            fs::remove_file(&path).map_err(StorageError::io(&path))?;
        }
        self.telemetry.segments.set(self.ledger.lock().segments.len() as i64);
        Ok(())
    }
}

fn fail_all(batch: Vec<Request>, err: &StorageError) {
    for req in batch {
        (req.done)(Err(StorageError::WalWrite(err.to_string())));
    }
}

fn new_segment(dir: &Path, first_seq: u64) -> Result<(File, PathBuf), StorageError> {
    let path = dir.join(segment::file_name(first_seq));
    let mut file =
        OpenOptions::new().create(true).truncate(true).write(true).open(&path).map_err(StorageError::io(&path))?;
    file.write_all(segment::MAGIC).map_err(StorageError::io(&path))?;
    file.sync_all().map_err(StorageError::io(&path))?;
    // Make the new file's directory entry durable too.
    File::open(dir).and_then(|d| d.sync_all()).map_err(StorageError::io(dir))?;
    Ok((file, path))
}

#[cfg(test)]
mod tests;
