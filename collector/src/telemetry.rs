//! Sightline's own ingest metrics (self-telemetry), served on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

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

sightline_storage::telemetry! {
    /// What the door and the lanes did, by signal and tenant.
    pub struct IngestTelemetry("sightline_ingest") {
        /// Items received, before any check
        received_items: Family<SignalTenant, Counter>,
        /// Items written to the WAL and acknowledged
        accepted_items: Family<SignalTenant, Counter>,
        /// Items rejected as invalid (partial success)
        invalid_items: Family<SignalTenant, Counter>,
        /// Items refused whole-request, by reason
        refused_items: Family<Refusal, Counter>,
        /// Items handed to the stores
        stored_items: Family<SignalLabel, Counter>,
        /// Batches a store failed to take
        store_errors: Family<SignalLabel, Counter>,
        /// Acknowledged requests waiting for their store
        queue_depth: Family<SignalLabel, Gauge>,
        /// Bytes of accepted requests not yet stored
        memory_in_use_bytes: Gauge,
        /// Export request latency
        request_duration_seconds: Family<Request, Histogram> =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.5, 14))),
    }
}

impl IngestTelemetry {
    pub fn signal_tenant(signal: &'static str, tenant: &str) -> SignalTenant {
        SignalTenant { signal, tenant: tenant.to_owned() }
    }
}
