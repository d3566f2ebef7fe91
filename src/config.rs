//! The configuration: one typed tree with a default for every option.
//!
//! Sources, later ones winning: the built-in defaults, the TOML file given
//! with `--config`, environment variables `SIGHTLINE_<SECTION>__<KEY>` (for
//! example `SIGHTLINE_WAL__FSYNC=never`, `SIGHTLINE_DATA_DIR=/var/lib/sightline`),
//! then command-line flags. Unknown keys are errors that name the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sightline_collector::IngestConfig;
use sightline_storage::wal::FsyncPolicy;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the WAL and the stores keep their files.
    pub data_dir: PathBuf,
    pub listen: Listen,
    /// Where span parts and metric blocks are kept: the data directory or a bucket.
    pub storage: sightline_storage::objects::StorageConfig,
    pub ingest: IngestConfig,
    pub wal: WalSection,
    pub spans: SpansSection,
    pub logs: LogsSection,
    pub metrics: MetricsSection,
    pub spanmetrics: sightline_collector::spanmetrics::SpanMetricsConfig,
    pub auth: crate::auth::AuthConfig,
    pub query: sightline_query::limits::QueryLimits,
    pub syslog: sightline_collector::receivers::syslog::SyslogConfig,
    pub rules: sightline_rules::RulesConfig,
    pub alerting: sightline_rules::AlertingConfig,
    pub tls: crate::tls::TlsConfig,
    pub log: LogSection,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./sightline-data"),
            listen: Listen::default(),
            storage: Default::default(),
            ingest: IngestConfig::default(),
            wal: WalSection::default(),
            spans: SpansSection::default(),
            logs: LogsSection::default(),
            metrics: MetricsSection::default(),
            spanmetrics: Default::default(),
            auth: Default::default(),
            query: Default::default(),
            syslog: Default::default(),
            rules: Default::default(),
            alerting: Default::default(),
            tls: Default::default(),
            log: LogSection::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    /// OTLP/gRPC.
    pub grpc: SocketAddr,
    /// OTLP/HTTP.
    pub http: SocketAddr,
    /// Query APIs, `/metrics` and the web UI.
    pub api: SocketAddr,
    /// Zipkin's span API (`POST /api/v2/spans`).
    pub zipkin: SocketAddr,
    /// Syslog over TCP and UDP on this address; off unless set
    /// (`"0.0.0.0:1514"`, say).
    pub syslog: Option<SocketAddr>,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            grpc: SocketAddr::from(([0, 0, 0, 0], 4317)),
            http: SocketAddr::from(([0, 0, 0, 0], 4318)),
            api: SocketAddr::from(([0, 0, 0, 0], 7070)),
            zipkin: SocketAddr::from(([0, 0, 0, 0], 9411)),
            syslog: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// Group commit: every batch is fsynced before it is acknowledged.
    Batch,
    /// Acknowledge once written; fsync every `fsync_interval_ms`.
    Interval,
    /// Never fsync (benchmarks only: a power loss loses acknowledged data).
    Never,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WalSection {
    pub fsync: FsyncMode,
    pub fsync_interval_ms: u64,
    pub segment_bytes: u64,
    /// Appends that may wait for the WAL writer before requests are refused.
    pub queue_capacity: usize,
}

impl Default for WalSection {
    fn default() -> Self {
        Self { fsync: FsyncMode::Batch, fsync_interval_ms: 10, segment_bytes: 64 << 20, queue_capacity: 4096 }
    }
}

impl WalSection {
    pub fn policy(&self) -> FsyncPolicy {
        match self.fsync {
            FsyncMode::Batch => FsyncPolicy::Batch,
            FsyncMode::Interval => FsyncPolicy::Interval(Duration::from_millis(self.fsync_interval_ms)),
            FsyncMode::Never => FsyncPolicy::Never,
        }
    }
}

/// The span store: when the head becomes a Parquet part, compaction,
/// retention, and the per-trace guard rail.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SpansSection {
    pub flush_spans: usize,
    pub flush_age_seconds: u64,
    pub row_group_rows: usize,
    pub retention_hours: u64,
    pub compaction_window_minutes: u64,
    pub compaction_min_parts: usize,
    pub compaction_max_spans: usize,
    pub maintenance_interval_seconds: u64,
    /// Larger traces are returned truncated, with a flag.
    pub max_spans_per_trace: usize,
    /// Spans not yet in parts beyond which new spans are refused (503, retryable).
    pub max_unflushed_spans: usize,
    /// Row groups a flush encodes at once, each on its own thread; 0 is the
    /// cores left to each shard.
    pub flush_threads: usize,
    /// Slices of the head, split by trace id, each with its own lane and
    /// flush thread; 0 is one per core, at most 8.
    pub shards: usize,
}

impl Default for SpansSection {
    fn default() -> Self {
        Self {
            flush_spans: 100_000,
            flush_age_seconds: 30,
            row_group_rows: 32768,
            retention_hours: 7 * 24,
            compaction_window_minutes: 60,
            compaction_min_parts: 4,
            compaction_max_spans: 1_000_000,
            maintenance_interval_seconds: 60,
            max_spans_per_trace: 100_000,
            max_unflushed_spans: 300_000,
            flush_threads: 0,
            shards: 0,
        }
    }
}

impl SpansSection {
    pub fn store_config(&self) -> sightline_storage::spans::SpanStoreConfig {
        sightline_storage::spans::SpanStoreConfig {
            flush_spans: self.flush_spans,
            flush_age: Duration::from_secs(self.flush_age_seconds),
            row_group_rows: self.row_group_rows,
            retention: Duration::from_secs(self.retention_hours * 3600),
            compaction_window: Duration::from_secs(self.compaction_window_minutes * 60),
            compaction_min_parts: self.compaction_min_parts,
            compaction_max_spans: self.compaction_max_spans,
            maintenance_interval: Duration::from_secs(self.maintenance_interval_seconds),
            max_unflushed_spans: self.max_unflushed_spans,
            flush_threads: self.flush_threads,
            shards: self.shards,
        }
    }
}

/// The log store (ingested log records), not Sightline's own logging.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogsSection {
    /// Each partition (one tantivy index) covers this many hours.
    pub partition_hours: u64,
    /// A line is searchable at most this long after it is acknowledged.
    pub commit_interval_ms: u64,
    pub retention_hours: u64,
    /// Indexing threads per partition writer; 0 picks the core count (at most 4).
    pub indexing_threads: usize,
    /// Indexing memory of a partition writer, all threads together (at least 15 MB per thread).
    pub writer_memory_mb: usize,
    pub maintenance_interval_seconds: u64,
}

impl Default for LogsSection {
    fn default() -> Self {
        Self {
            partition_hours: 24,
            commit_interval_ms: 1000,
            retention_hours: 7 * 24,
            indexing_threads: 0,
            writer_memory_mb: 128,
            maintenance_interval_seconds: 60,
        }
    }
}

impl LogsSection {
    pub fn store_config(&self, data_dir: &Path) -> sightline_storage::logs::LogStoreConfig {
        let mut c = sightline_storage::logs::LogStoreConfig::new(data_dir.join("logs"));
        c.partition = Duration::from_secs(self.partition_hours * 3600);
        c.commit_interval = Duration::from_millis(self.commit_interval_ms);
        c.retention = Duration::from_secs(self.retention_hours * 3600);
        if self.indexing_threads > 0 {
            c.indexing_threads = self.indexing_threads;
        }
        c.writer_memory_bytes = self.writer_memory_mb << 20;
        c.maintenance_interval = Duration::from_secs(self.maintenance_interval_seconds);
        c
    }
}

/// The metric store.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// A sample may arrive this much later than its series' newest.
    pub out_of_order_window_seconds: u64,
    /// Each block covers this many minutes.
    pub block_minutes: u64,
    pub retention_hours: u64,
    pub cut_interval_seconds: u64,
    /// The blocks of each window of this many hours are merged into one.
    pub compaction_hours: u64,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            out_of_order_window_seconds: 600,
            block_minutes: 120,
            retention_hours: 15 * 24,
            cut_interval_seconds: 30,
            compaction_hours: 24,
        }
    }
}

impl MetricsSection {
    pub fn store_config(&self) -> sightline_storage::metrics::MetricStoreConfig {
        sightline_storage::metrics::MetricStoreConfig {
            out_of_order_window: Duration::from_secs(self.out_of_order_window_seconds),
            block_duration: Duration::from_secs(self.block_minutes * 60),
            retention: Duration::from_secs(self.retention_hours * 3600),
            cut_interval: Duration::from_secs(self.cut_interval_seconds),
            compaction_window: Duration::from_secs(self.compaction_hours * 3600),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// A `tracing` filter, e.g. `info` or `sightline=debug,info`.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

impl Config {
    /// Loads the file (if any) and the environment over the defaults, then validates.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let mut tree = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str::<toml::Table>(&text).with_context(|| format!("invalid TOML in {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut tree, env)?;
        let config: Config =
            Config::deserialize(toml::Value::Table(tree)).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.ingest.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        self.auth.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        self.query.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        self.rules.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        self.alerting.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        self.tls.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        self.storage.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        if self.wal.segment_bytes < 4096 {
            bail!("invalid configuration: wal.segment_bytes must be at least 4096");
        }
        if self.wal.fsync == FsyncMode::Interval && self.wal.fsync_interval_ms == 0 {
            bail!("invalid configuration: wal.fsync_interval_ms must be at least 1");
        }
        let sp = &self.spans;
        if sp.flush_spans == 0 || sp.row_group_rows == 0 || sp.max_spans_per_trace == 0 {
            bail!(
                "invalid configuration: spans.flush_spans, spans.row_group_rows and spans.max_spans_per_trace must be at least 1"
            );
        }
        if sp.max_unflushed_spans < sp.flush_spans {
            bail!("invalid configuration: spans.max_unflushed_spans must be at least spans.flush_spans");
        }
        if sp.compaction_window_minutes == 0 || sp.compaction_min_parts < 2 {
            bail!(
                "invalid configuration: spans.compaction_window_minutes must be at least 1 and spans.compaction_min_parts at least 2"
            );
        }
        if sp.retention_hours == 0 {
            bail!("invalid configuration: spans.retention_hours must be at least 1");
        }
        let lg = &self.logs;
        if lg.partition_hours == 0 || lg.retention_hours == 0 || lg.commit_interval_ms == 0 {
            bail!(
                "invalid configuration: logs.partition_hours, logs.retention_hours and logs.commit_interval_ms must be at least 1"
            );
        }
        if lg.maintenance_interval_seconds == 0 {
            bail!("invalid configuration: logs.maintenance_interval_seconds must be at least 1");
        }
        let m = &self.metrics;
        if m.block_minutes == 0 || m.retention_hours == 0 || m.cut_interval_seconds == 0 || m.compaction_hours == 0 {
            bail!(
                "invalid configuration: metrics.block_minutes, retention_hours, cut_interval_seconds and compaction_hours must be at least 1"
            );
        }
        self.spanmetrics.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        if self.wal.queue_capacity == 0 {
            bail!("invalid configuration: wal.queue_capacity must be at least 1");
        }
        Ok(())
    }

    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}

/// Sets `SIGHTLINE_A__B=value` as key `a.b`; the value is read as a TOML
/// value when it parses as one, else as a string.
fn apply_env(tree: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<()> {
    for (name, raw) in env {
        let Some(path) = name.strip_prefix("SIGHTLINE_") else {
            continue;
        };
        if path == "CONFIG" {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let (last, parents) = keys.split_last().context("empty environment key")?;
        let mut table = &mut *tree;
        for key in parents {
            let entry = table.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().with_context(|| format!("{name}: {key} is not a section"))?;
        }
        table.insert(last.clone(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, env(&[])).expect("defaults");
        assert_eq!(c, Config::default());
        assert_eq!(c.listen.grpc.port(), 4317);
        assert_eq!(c.ingest.max_body_bytes, 16 << 20);
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.toml");
        std::fs::write(
            &path,
            "data_dir = \"/x\"\n[wal]\nfsync = \"interval\"\n[ingest.rate_limit]\nitems_per_second = 5\n",
        )
        .expect("write");
        let c = Config::load(
            Some(&path),
            env(&[("SIGHTLINE_WAL__FSYNC_INTERVAL_MS", "25"), ("SIGHTLINE_DATA_DIR", "/y"), ("OTHER", "1")]),
        )
        .expect("loads");
        assert_eq!(c.data_dir, PathBuf::from("/y"));
        assert_eq!(c.wal.fsync, FsyncMode::Interval);
        assert_eq!(c.wal.fsync_interval_ms, 25);
        assert_eq!(c.ingest.rate_limit.items_per_second, 5);
        assert_eq!(c.ingest.rate_limit.burst_items, 2_000_000, "other keys keep their defaults");
    }

    #[test]
    fn errors_name_the_key() {
        let err = Config::load(None, env(&[("SIGHTLINE_WAL__FSYNCH", "never")])).expect_err("unknown key");
        assert!(format!("{err:#}").contains("fsynch"), "{err:#}");
        let err = Config::load(None, env(&[("SIGHTLINE_INGEST__MAX_BODY_BYTES", "10")])).expect_err("too small");
        assert!(format!("{err:#}").contains("ingest.max_body_bytes"), "{err:#}");
        let err = Config::load(None, env(&[("SIGHTLINE_WAL__FSYNC", "sometimes")])).expect_err("bad enum");
        assert!(format!("{err:#}").contains("sometimes"), "{err:#}");
    }
}
