//! The `[ingest]` section of the configuration.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Request header (gRPC metadata key) that names the tenant.
    pub tenant_header: String,
    /// Tenant of requests without the header.
    pub default_tenant: String,
    /// Largest request body accepted, after decompression.
    pub max_body_bytes: usize,
    /// Deepest nesting of attribute values (arrays and maps) accepted.
    pub max_attribute_depth: usize,
    /// Bytes of accepted requests that may be in flight (queued or being
    /// stored) before new ones are refused with a retryable error. 0 means
    /// an eighth of the resident memory limit, between `max_body_bytes`
    /// and 512 MiB.
    pub memory_limit_bytes: u64,
    /// Resident memory of the whole process that ingest keeps under: above
    /// 75 % of it, requests are refused with a retryable error. 0 means
    /// three quarters of the machine's memory.
    pub resident_memory_limit_bytes: u64,
    /// Requests that may wait per signal between the WAL and the store.
    pub queue_capacity: QueueCapacity,
    pub rate_limit: RateLimit,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            tenant_header: "X-Scope-OrgID".into(),
            default_tenant: "default".into(),
            max_body_bytes: 16 << 20,
            max_attribute_depth: 16,
            memory_limit_bytes: 0,
            resident_memory_limit_bytes: 0,
            queue_capacity: QueueCapacity::default(),
            rate_limit: RateLimit::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueueCapacity {
    pub traces: usize,
    pub logs: usize,
    pub metrics: usize,
}

impl Default for QueueCapacity {
    fn default() -> Self {
        Self { traces: 1024, logs: 1024, metrics: 1024 }
    }
}

/// Per-tenant token buckets; `0` disables a limit.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    pub items_per_second: u64,
    pub burst_items: u64,
    pub bytes_per_second: u64,
    pub burst_bytes: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            items_per_second: 1_000_000,
            burst_items: 2_000_000,
            bytes_per_second: 256 << 20,
            burst_bytes: 512 << 20,
        }
    }
}

impl IngestConfig {
    /// The resident memory limit in bytes, with 0 resolved against the
    /// machine's memory (`/proc/meminfo`; 4 GiB where that cannot be read).
    pub fn resident_limit(&self) -> u64 {
        if self.resident_memory_limit_bytes > 0 {
            return self.resident_memory_limit_bytes;
        }
        let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines().find_map(|l| l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        });
        total_kib.map_or(4 << 30, |kib| kib * 1024 / 4 * 3)
    }

    /// The memory budget for requests in flight, with 0 resolved against
    /// the resident memory limit: requests read and decoded at once must
    /// leave the stores their share of it.
    pub fn memory_budget(&self) -> u64 {
        match self.memory_limit_bytes {
            0 => (self.resident_limit() / 8).clamp(self.max_body_bytes as u64, 512 << 20),
            n => n,
        }
    }

    /// Checks what serde cannot; names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.tenant_header.is_empty() || http::HeaderName::from_bytes(self.tenant_header.as_bytes()).is_err() {
            return Err(format!("ingest.tenant_header: {:?} is not a valid header name", self.tenant_header));
        }
        sightline_storage::model::Tenant::new(&self.default_tenant)
            .map_err(|e| format!("ingest.default_tenant: {e}"))?;
        if self.max_body_bytes < 1024 {
            return Err("ingest.max_body_bytes: must be at least 1024".into());
        }
        if self.max_attribute_depth == 0 {
            return Err("ingest.max_attribute_depth: must be at least 1".into());
        }
        if self.memory_limit_bytes != 0 && self.memory_limit_bytes < self.max_body_bytes as u64 {
            return Err("ingest.memory_limit_bytes: must be 0 or at least ingest.max_body_bytes".into());
        }
        if self.resident_memory_limit_bytes != 0 && self.resident_memory_limit_bytes < self.memory_budget() {
            return Err("ingest.resident_memory_limit_bytes: must be 0 or at least ingest.memory_limit_bytes".into());
        }
        let q = &self.queue_capacity;
        if q.traces == 0 || q.logs == 0 || q.metrics == 0 {
            return Err("ingest.queue_capacity: every signal needs a capacity of at least 1".into());
        }
        let r = &self.rate_limit;
        if (r.items_per_second > 0 && r.burst_items == 0) || (r.bytes_per_second > 0 && r.burst_bytes == 0) {
            return Err("ingest.rate_limit: a burst of 0 with a non-zero rate refuses everything".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::IngestConfig;

    #[test]
    fn the_memory_budget_is_an_eighth_of_the_resident_limit_unless_set() {
        let with = |memory, resident| IngestConfig {
            memory_limit_bytes: memory,
            resident_memory_limit_bytes: resident,
            ..IngestConfig::default()
        };
        assert_eq!(with(0, 1 << 30).memory_budget(), 128 << 20);
        assert_eq!(with(0, 64 << 30).memory_budget(), 512 << 20, "at most 512 MiB");
        assert_eq!(with(0, 64 << 20).memory_budget(), 16 << 20, "at least the largest body");
        assert_eq!(with(300 << 20, 1 << 30).memory_budget(), 300 << 20, "as set");
        assert!(with(0, 1 << 30).validate().is_ok());
        assert!(with(8 << 20, 0).validate().is_err(), "under the largest body");
        assert!(with(2 << 30, 1 << 30).validate().is_err(), "over the resident limit");
    }
}
