//! The ingest pipeline: admission, the WAL, and one lane per signal.
//!
//! [`Pipeline::submit`] answers only after the items are in the WAL and in
//! their store's head, so that what a client was told is stored is durable
//! and readable by every query at once (heads only take batches into
//! memory; heavy work such as Parquet or tantivy happens behind them). The
//! WAL's writer thread then hands each batch to its signal's lanes (bounded
//! queues whose slots were reserved before the append, so a durable batch
//! always has room) in sequence order; a dedicated thread per lane gives it
//! to the store. Spans have one lane per shard of the span store: a batch
//! is split by trace id and every lane is handed its part (perhaps empty),
//! so that each shard sees every sequence in order. Validation, encoding
//! and conversion into the storage model happen before the append, on the
//! submitting task (on a blocking thread for large batches), so they run in
//! parallel across requests. Lanes are
//! bulkheads: a flood of logs fills the logs lane and is refused there while
//! spans keep flowing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use prost::Message;
use sightline_storage::StorageError;
use sightline_storage::metrics::Point;
use sightline_storage::model::{LogRecord, Signal, Span, Tenant};
use sightline_storage::sink::{Batch, Refused, Sink, split};
use sightline_storage::wal::{AppendError, Format, Replay, Wal};
use tokio::sync::{mpsc, oneshot};

use crate::admission::{MemoryBudget, MemoryPermit, RateLimiter, ResidentMemory};
use crate::config::IngestConfig;
use crate::error::IngestError;
use crate::signal::{Logs, Metrics, RemoteWrite, SignalKind, Traces};
use crate::telemetry::{IngestTelemetry, Refusal, SignalLabel};
use crate::validate::Limits;

/// The stores that receive each signal: spans through one sink per shard
/// of the span store (a lane each, split with [`SignalKind::shard`]).
#[derive(Clone)]
pub struct Sinks {
    pub spans: Vec<Arc<dyn Sink<Span>>>,
    pub logs: Arc<dyn Sink<LogRecord>>,
    pub metrics: Arc<dyn Sink<Point>>,
}

/// What an accepted request turned into: how many items were rejected as
/// invalid, and why (empty when none were).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub accepted: u64,
    pub rejected: u64,
    pub message: String,
}

/// Told once the store holds a batch (or could not take it).
type StoredAck = oneshot::Sender<Result<Refused, IngestError>>;

struct Work<T> {
    tenant: Tenant,
    seq: u64,
    /// The batch, already converted into the storage model (conversion runs
    /// on the submitting task, in parallel; the lane thread only stores).
    items: Vec<T>,
    /// Shared by the parts of one request, let go when the last is stored.
    _memory: Arc<MemoryPermit>,
    /// The waiting client, for live requests; `None` for replay.
    ack: Option<StoredAck>,
}

enum LaneMsg<T> {
    Work(Work<T>),
    /// Answered once everything queued before it is in the store.
    Barrier(std::sync::mpsc::SyncSender<()>),
    Stop,
}

/// One queue (of items of type `T`) and the thread that drains it into
/// its sink.
struct Lane<T> {
    tx: mpsc::Sender<LaneMsg<T>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// A signal's lanes, one per sink (per shard of its store).
pub struct Lanes<T> {
    lanes: Vec<Lane<T>>,
    sinks: Vec<Arc<dyn Sink<T>>>,
}

impl<T: Send + 'static> Lanes<T> {
    fn start(
        signal: Signal,
        capacity: usize,
        sinks: Vec<Arc<dyn Sink<T>>>,
        telemetry: &Arc<IngestTelemetry>,
    ) -> std::io::Result<Self> {
        let one = sinks.len() == 1;
        let lanes = sinks
            .iter()
            .enumerate()
            .map(|(i, sink)| {
                let name = if one { format!("lane-{signal}") } else { format!("lane-{signal}-{i}") };
                start_lane(name, signal, capacity, sink.clone(), telemetry.clone())
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self { lanes, sinks })
    }

    fn backlogged(&self) -> bool {
        self.sinks.iter().any(|s| s.backlogged())
    }

    /// A slot in every lane, or none.
    fn reserve(&self) -> Option<Vec<mpsc::OwnedPermit<LaneMsg<T>>>> {
        self.lanes.iter().map(|l| l.tx.clone().try_reserve_owned().ok()).collect()
    }

    /// True while a lane has no room for another request.
    fn full(&self) -> bool {
        self.lanes.iter().any(|l| l.tx.capacity() == 0)
    }

    /// Requests queued in the fullest lane.
    fn depth(&self) -> i64 {
        self.lanes.iter().map(|l| depth(&l.tx)).max().unwrap_or(0)
    }

    /// Waits for room and queues each lane's part of one WAL record.
    fn send_blocking(&self, tenant: &Tenant, seq: u64, pieces: Vec<Vec<T>>, memory: MemoryPermit) -> bool {
        let memory = Arc::new(memory);
        self.lanes.iter().zip(pieces).all(|(lane, items)| {
            let work = Work { tenant: tenant.clone(), seq, items, _memory: memory.clone(), ack: None };
            lane.tx.blocking_send(LaneMsg::Work(work)).is_ok()
        })
    }

    /// A barrier in every lane, answered once what was queued before it is stored.
    fn barriers(&self) -> Vec<std::sync::mpsc::Receiver<()>> {
        let barrier = |lane: &Lane<T>| {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            lane.tx.blocking_send(LaneMsg::Barrier(tx)).ok().map(|()| rx)
        };
        self.lanes.iter().filter_map(barrier).collect()
    }

    fn stop(&self) {
        for lane in &self.lanes {
            let _ = lane.tx.blocking_send(LaneMsg::Stop);
        }
        for lane in &self.lanes {
            if let Some(worker) = lane.worker.lock().take() {
                let _ = worker.join();
            }
        }
    }
}

/// A way in whose lanes the pipeline knows.
pub trait Laned: SignalKind {
    #[doc(hidden)]
    fn lanes(p: &Pipeline) -> &Lanes<Self::Item>;
}

impl Laned for Traces {
    fn lanes(p: &Pipeline) -> &Lanes<Span> {
        &p.traces
    }
}
impl Laned for Logs {
    fn lanes(p: &Pipeline) -> &Lanes<LogRecord> {
        &p.logs
    }
}
impl Laned for Metrics {
    fn lanes(p: &Pipeline) -> &Lanes<Point> {
        &p.metrics_lane
    }
}
impl Laned for RemoteWrite {
    fn lanes(p: &Pipeline) -> &Lanes<Point> {
        &p.metrics_lane
    }
}

pub struct Pipeline {
    config: IngestConfig,
    limits: Limits,
    wal: Wal,
    rate: RateLimiter,
    memory: MemoryBudget,
    resident: ResidentMemory,
    telemetry: Arc<IngestTelemetry>,
    traces: Lanes<Span>,
    logs: Lanes<LogRecord>,
    metrics_lane: Lanes<Point>,
    closing: AtomicBool,
}

impl Pipeline {
    /// Starts the lanes' threads. Call [`Pipeline::replay`] before serving.
    pub fn start(config: IngestConfig, wal: Wal, sinks: Sinks, registry: &mut Registry) -> std::io::Result<Arc<Self>> {
        let telemetry = Arc::new(IngestTelemetry::default());
        telemetry.register(registry);
        let q = &config.queue_capacity;
        Ok(Arc::new(Self {
            limits: Limits { max_attribute_depth: config.max_attribute_depth },
            rate: RateLimiter::new(config.rate_limit.clone()),
            memory: MemoryBudget::new(config.memory_budget()),
            resident: ResidentMemory::new(config.resident_limit()),
            traces: Lanes::start(Signal::Traces, q.traces, sinks.spans, &telemetry)?,
            logs: Lanes::start(Signal::Logs, q.logs, vec![sinks.logs], &telemetry)?,
            metrics_lane: Lanes::start(Signal::Metrics, q.metrics, vec![sinks.metrics], &telemetry)?,
            telemetry,
            wal,
            config,
            closing: AtomicBool::new(false),
        }))
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    pub fn telemetry(&self) -> &IngestTelemetry {
        &self.telemetry
    }

    /// The process's resident memory, which the server keeps current.
    pub fn resident(&self) -> &ResidentMemory {
        &self.resident
    }

    /// Holds `bytes` of the memory budget while a request's body is read and
    /// decoded (before [`Pipeline::submit`] takes its own share): many
    /// requests arriving at once cannot all be read into memory.
    pub fn reserve(&self, bytes: usize) -> Result<MemoryPermit, IngestError> {
        let permit = self.memory.try_acquire(bytes)?;
        self.telemetry.memory_in_use_bytes.set(self.memory.in_use_bytes() as i64);
        Ok(permit)
    }

    /// Refuses (retryably) while the server is closing or its memory is
    /// near the limit: receivers ask before they read a body.
    pub fn check_pressure(&self) -> Result<(), IngestError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(IngestError::ShuttingDown);
        }
        self.resident.check()
    }

    /// [`Pipeline::check_pressure`], and whether the lanes of `K` and their
    /// store would take a request now: receivers ask before they read a
    /// body, so that a refusal while the store catches up costs neither
    /// the read nor the decode ([`Pipeline::submit`] asks again).
    pub fn check_ready<K: Laned>(&self) -> Result<(), IngestError> {
        self.check_pressure()?;
        let lanes = K::lanes(self);
        if lanes.backlogged() {
            return Err(IngestError::Overloaded(K::STORE_BACKLOG));
        }
        if lanes.full() {
            return Err(IngestError::Overloaded(K::QUEUE));
        }
        Ok(())
    }

    /// The tenant named by a request's tenant header, or the default tenant.
    pub fn tenant(&self, header: Option<&[u8]>) -> Result<Tenant, IngestError> {
        let name = match header {
            None => self.config.default_tenant.as_str(),
            Some(bytes) => {
                std::str::from_utf8(bytes).map_err(|_| IngestError::Invalid("tenant header is not UTF-8".into()))?
            }
        };
        Tenant::new(name).map_err(|e| IngestError::Invalid(e.to_string()))
    }

    /// Admits one export request: rate limit, validation, memory and queue
    /// admission, then the WAL. Returns once the valid items are durable.
    /// `raw` is the request's protobuf encoding when the caller has it, to
    /// be logged as is when validation removed nothing.
    pub async fn submit<K: Laned>(
        &self,
        tenant: &Tenant,
        request: K::Request,
        raw: Option<Bytes>,
    ) -> Result<Outcome, IngestError> {
        let items = K::count(&request);
        let labels = IngestTelemetry::signal_tenant(K::SIGNAL.as_str(), tenant.as_str());
        self.telemetry.received_items.get_or_create(&labels).inc_by(items);
        let result = self.admit::<K>(tenant, request, raw, items).await;
        match &result {
            Ok(outcome) => {
                self.telemetry.accepted_items.get_or_create(&labels).inc_by(outcome.accepted);
                self.telemetry.invalid_items.get_or_create(&labels).inc_by(outcome.rejected);
            }
            Err(e) => {
                let refusal = Refusal { signal: K::SIGNAL.as_str(), tenant: tenant.to_string(), reason: e.reason() };
                self.telemetry.refused_items.get_or_create(&refusal).inc_by(items);
            }
        }
        self.telemetry.memory_in_use_bytes.set(self.memory.in_use_bytes() as i64);
        result
    }

    async fn admit<K: Laned>(
        &self,
        tenant: &Tenant,
        request: K::Request,
        raw: Option<Bytes>,
        items: u64,
    ) -> Result<Outcome, IngestError> {
        self.check_pressure()?;
        let size = raw.as_ref().map_or_else(|| request.encoded_len(), Bytes::len);
        self.rate.check(tenant.as_str(), items, size as u64)?;
        let memory = self.memory.try_acquire(size)?;
        self.telemetry.memory_in_use_bytes.set(self.memory.in_use_bytes() as i64);
        let lanes = K::lanes(self);
        if lanes.backlogged() {
            return Err(IngestError::Overloaded(K::STORE_BACKLOG));
        }
        let slots = lanes.reserve().ok_or(IngestError::Overloaded(K::QUEUE))?;
        let (limits, shards) = (self.limits, slots.len());
        let prepared = if items > INLINE_PREPARE_ITEMS {
            tokio::task::spawn_blocking(move || prepare::<K>(request, raw, items, limits, shards))
                .await
                .map_err(|_| IngestError::ShuttingDown)?
        } else {
            prepare::<K>(request, raw, items, limits, shards)
        };
        let Prepared { outcome, payload, pieces } = prepared;
        if outcome.accepted == 0 {
            return Ok(outcome);
        }
        let (ack_txs, ack_rxs): (Vec<StoredAck>, Vec<_>) = (0..shards).map(|_| oneshot::channel()).unzip();
        let work_tenant = tenant.clone();
        let done = Box::new(move |result: Result<u64, StorageError>| match result {
            Ok(seq) => {
                let memory = Arc::new(memory);
                for ((slot, items), ack) in slots.into_iter().zip(pieces).zip(ack_txs) {
                    let work =
                        Work { tenant: work_tenant.clone(), seq, items, _memory: memory.clone(), ack: Some(ack) };
                    slot.send(LaneMsg::Work(work));
                }
            }
            Err(e) => {
                for ack in ack_txs {
                    let _ = ack.send(Err(IngestError::Storage(e.to_string())));
                }
            }
        });
        self.wal.append((K::SIGNAL, K::FORMAT), tenant.clone(), payload, done).map_err(|e| match e {
            AppendError::Full => IngestError::Overloaded("the write-ahead log queue"),
            AppendError::Closed => IngestError::ShuttingDown,
        })?;
        self.telemetry.queue_depth.get_or_create(&SignalLabel { signal: K::SIGNAL.as_str() }).set(lanes.depth());
        // Durable in the WAL and readable in the store: only now say yes.
        let mut stored = Ok(Refused::default());
        for rx in ack_rxs {
            let answer = rx.await.unwrap_or(Err(IngestError::ShuttingDown));
            stored = match (stored, answer) {
                (Ok(mut all), Ok(r)) => {
                    all.count += r.count;
                    if all.reason.is_empty() {
                        all.reason = r.reason;
                    }
                    Ok(all)
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        match stored {
            Ok(refused) if refused.count > 0 => {
                let mut outcome = outcome;
                let refused_count = refused.count.min(outcome.accepted);
                outcome.accepted -= refused_count;
                outcome.rejected += refused_count;
                let reason = format!("{refused_count} {} refused: {}", K::ITEMS, refused.reason);
                outcome.message =
                    if outcome.message.is_empty() { reason } else { format!("{}; {reason}", outcome.message) };
                Ok(outcome)
            }
            Ok(_) => Ok(outcome),
            Err(e) => Err(e),
        }
    }

    /// Feeds every record of the WAL to the lanes, waiting for room. Blocks:
    /// call it from a blocking thread, before the receivers start.
    pub fn replay_blocking(&self, replay: Replay) -> Result<u64, StorageError> {
        let runtime = tokio::runtime::Handle::current();
        let mut count = 0;
        for record in replay {
            let record = record?;
            let memory = runtime.block_on(self.memory.acquire(record.payload.len()));
            let (tenant, seq, payload) = (record.tenant, record.seq, record.payload);
            let sent = match (record.signal, record.format) {
                (Signal::Traces, Format::Otlp) => self.replay_one::<Traces>(tenant, seq, payload, memory),
                (Signal::Logs, Format::Otlp) => self.replay_one::<Logs>(tenant, seq, payload, memory),
                (Signal::Metrics, Format::Otlp) => self.replay_one::<Metrics>(tenant, seq, payload, memory),
                (Signal::Metrics, Format::RemoteWrite) => self.replay_one::<RemoteWrite>(tenant, seq, payload, memory),
                (signal, format) => {
                    tracing::error!(seq, %signal, ?format, "WAL record of an unknown kind skipped");
                    false
                }
            };
            count += u64::from(sent);
        }
        self.wait_stored_blocking();
        Ok(count)
    }

    /// Waits until every lane has handed what it had queued to its store.
    fn wait_stored_blocking(&self) {
        let waits = [self.traces.barriers(), self.logs.barriers(), self.metrics_lane.barriers()];
        for rx in waits.into_iter().flatten() {
            let _ = rx.recv();
        }
    }

    fn replay_one<K: Laned>(&self, tenant: Tenant, seq: u64, payload: Bytes, memory: MemoryPermit) -> bool {
        match K::Request::decode(payload) {
            Ok(request) => {
                let lanes = K::lanes(self);
                let shards = lanes.lanes.len();
                let pieces = split(K::convert(request), shards, |item| K::shard(item, shards));
                lanes.send_blocking(&tenant, seq, pieces, memory)
            }
            Err(e) => {
                tracing::error!(seq, signal = %K::SIGNAL, error = %e, "undecodable WAL record skipped");
                false
            }
        }
    }

    /// Refuses new requests, writes what the WAL holds, lets each lane store
    /// what it has queued, and stops the threads. Blocks; idempotent.
    pub fn shutdown_blocking(&self) {
        self.closing.store(true, Ordering::Release);
        self.wal.shutdown();
        self.traces.stop();
        self.logs.stop();
        self.metrics_lane.stop();
    }
}

/// Batches with more items than this are validated, encoded and converted
/// on a blocking thread rather than on the reactor.
const INLINE_PREPARE_ITEMS: u64 = 128;

/// A request made ready for the WAL and the store.
struct Prepared<T> {
    outcome: Outcome,
    /// What the WAL logs: the client's bytes when nothing was changed.
    payload: Bytes,
    /// The items for each of the signal's lanes.
    pieces: Vec<Vec<T>>,
}

/// Validates (dropping invalid items), encodes what the WAL logs, and
/// converts into the storage model, split over `shards` lanes.
fn prepare<K: SignalKind>(
    mut request: K::Request,
    raw: Option<Bytes>,
    items: u64,
    limits: Limits,
    shards: usize,
) -> Prepared<K::Item> {
    let rejections = K::validate(&mut request, limits);
    let outcome = Outcome {
        accepted: items - rejections.count,
        rejected: rejections.count,
        message: rejections.message(K::ITEMS),
    };
    if outcome.accepted == 0 {
        return Prepared { outcome, payload: Bytes::new(), pieces: Vec::new() };
    }
    let payload = match raw {
        Some(raw) if rejections.count == 0 && !rejections.rewritten => raw,
        _ => Bytes::from(request.encode_to_vec()),
    };
    let pieces = split(K::convert(request), shards, |item| K::shard(item, shards));
    Prepared { outcome, payload, pieces }
}

fn depth<T>(tx: &mpsc::Sender<T>) -> i64 {
    (tx.max_capacity() - tx.capacity()) as i64
}

fn start_lane<T: Send + 'static>(
    name: String,
    signal: Signal,
    capacity: usize,
    sink: Arc<dyn Sink<T>>,
    telemetry: Arc<IngestTelemetry>,
) -> std::io::Result<Lane<T>> {
    let (tx, mut rx) = mpsc::channel::<LaneMsg<T>>(capacity);
    let depth_tx = tx.downgrade();
    let worker = std::thread::Builder::new().name(name).spawn(move || {
        let label = SignalLabel { signal: signal.as_str() };
        loop {
            let work = match rx.blocking_recv() {
                Some(LaneMsg::Work(work)) => work,
                Some(LaneMsg::Barrier(done)) => {
                    let _ = done.send(());
                    continue;
                }
                Some(LaneMsg::Stop) | None => break,
            };
            let n = work.items.len() as u64;
            let stored = sink.consume_counted(Batch { tenant: work.tenant, wal_seq: work.seq, items: work.items });
            match &stored {
                Ok(refused) => {
                    telemetry.stored_items.get_or_create(&label).inc_by(n.saturating_sub(refused.count));
                }
                Err(e) => {
                    telemetry.store_errors.get_or_create(&label).inc();
                    tracing::error!(%signal, seq = work.seq, error = %e, "store refused a batch; it stays in the WAL");
                }
            }
            if let Some(ack) = work.ack {
                let _ = ack.send(stored.map_err(|e| IngestError::Storage(e.to_string())));
            }
            if let Some(tx) = depth_tx.upgrade() {
                telemetry.queue_depth.get_or_create(&label).set(depth(&tx));
            }
        }
    })?;
    Ok(Lane { tx, worker: Mutex::new(Some(worker)) })
}
