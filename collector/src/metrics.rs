//! Sightline's own ingest metrics, served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalTenant {
    pub signal: &'static str,
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Refusal {
    pub signal: &'static str,
    pub tenant: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabel {
    pub signal: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Request {
    pub transport: &'static str,
    pub signal: &'static str,
    pub outcome: &'static str,
}

pub struct IngestMetrics {
    pub received: Family<SignalTenant, Counter>,
    pub accepted: Family<SignalTenant, Counter>,
    pub invalid: Family<SignalTenant, Counter>,
    pub refused: Family<Refusal, Counter>,
    pub stored: Family<SignalLabel, Counter>,
    pub store_errors: Family<SignalLabel, Counter>,
    pub queue_depth: Family<SignalLabel, Gauge>,
    pub memory_in_use: Gauge,
    pub request_seconds: Family<Request, Histogram>,
}

impl IngestMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            received: Family::default(),
            accepted: Family::default(),
            invalid: Family::default(),
            refused: Family::default(),
            stored: Family::default(),
            store_errors: Family::default(),
            queue_depth: Family::default(),
            memory_in_use: Gauge::default(),
            request_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.5, 14))),
        };
        let r = registry;
        r.register("sightline_ingest_received_items", "Items received, before any check", m.received.clone());
        r.register("sightline_ingest_accepted_items", "Items written to the WAL and acknowledged", m.accepted.clone());
        r.register("sightline_ingest_invalid_items", "Items rejected as invalid (partial success)", m.invalid.clone());
        r.register("sightline_ingest_refused_items", "Items refused whole-request, by reason", m.refused.clone());
        r.register("sightline_ingest_stored_items", "Items handed to the stores", m.stored.clone());
        r.register("sightline_ingest_store_errors", "Batches a store failed to take", m.store_errors.clone());
        r.register(
            "sightline_ingest_queue_depth",
            "Acknowledged requests waiting for their store",
            m.queue_depth.clone(),
        );
        r.register(
            "sightline_ingest_memory_in_use_bytes",
            "Bytes of accepted requests not yet stored",
            m.memory_in_use.clone(),
        );
        r.register("sightline_ingest_request_duration_seconds", "Export request latency", m.request_seconds.clone());
        m
    }

    pub fn signal_tenant(signal: &'static str, tenant: &str) -> SignalTenant {
        SignalTenant { signal, tenant: tenant.to_owned() }
    }
}
