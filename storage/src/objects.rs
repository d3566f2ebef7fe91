//! Where the durable, immutable data lives: span parts and metric blocks are
//! written through one [`ObjectStore`], the local filesystem under the data
//! directory (the default) or an S3 bucket (`[storage] backend = "s3"`).
//!
//! [`open`] builds the store from [`StorageConfig`] and wraps it in a
//! [`Guarded`] store: every call is counted by operation and outcome and
//! timed, and a circuit breaker fails calls fast while the backend keeps
//! failing (its state is a gauge). Timeouts and retries with backoff are the
//! S3 client's own (`object_store`'s `ClientOptions` and `RetryConfig`).

mod cache;
mod guard;
#[cfg(any(test, feature = "testing"))]
pub mod seaweed;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

use crate::StorageError;
pub use cache::{CacheTelemetry, Cached};
pub use guard::{BreakerState, Call, Guarded, ObjectStoreTelemetry};

/// Which backend holds the parts and blocks.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Files under the data directory.
    #[default]
    Filesystem,
    /// An S3 bucket, or an S3-compatible server at `endpoint`.
    S3,
}

/// A credential: kept out of `Debug` output, logs and `sightline config`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"<redacted>\"" })
    }
}

/// The `[storage]` section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: Backend,
    pub bucket: String,
    /// An S3-compatible server (`http://127.0.0.1:8333`); empty for AWS.
    pub endpoint: String,
    pub region: String,
    /// Keys go under this path in the bucket (`team-a/sightline`).
    pub prefix: String,
    /// `https://<bucket>.<endpoint>` rather than `https://<endpoint>/<bucket>`.
    pub virtual_hosted_style: bool,
    /// Empty: the AWS environment (`AWS_ACCESS_KEY_ID`, …, or an instance's role).
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// A whole request, connect to last byte.
    pub request_timeout_seconds: u64,
    pub connect_timeout_seconds: u64,
    /// Retries of a failed request (5xx, timeouts, connection errors),
    /// with exponential backoff, within `retry_timeout_seconds`.
    pub max_retries: usize,
    pub retry_timeout_seconds: u64,
    /// Consecutive failed calls that open the circuit breaker; it fails
    /// calls at once for `breaker_cooldown_seconds`, then lets one through.
    pub breaker_failures: u32,
    pub breaker_cooldown_seconds: u64,
    /// Byte ranges read from the bucket (footers, bloom filters, trace
    /// indexes, column chunks) are kept here; empty: `<data_dir>/cache`.
    pub cache_dir: String,
    /// The cache's size on disk; 0 turns it off.
    pub cache_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Filesystem,
            bucket: String::new(),
            endpoint: String::new(),
            region: "us-east-1".into(),
            prefix: String::new(),
            virtual_hosted_style: false,
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            request_timeout_seconds: 30,
            connect_timeout_seconds: 5,
            max_retries: 3,
            retry_timeout_seconds: 60,
            breaker_failures: 5,
            breaker_cooldown_seconds: 10,
            cache_dir: String::new(),
            cache_bytes: 2 << 30,
        }
    }
}

impl StorageConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.backend == Backend::S3 && self.bucket.is_empty() {
            return Err("storage.bucket must be set when storage.backend is \"s3\"".into());
        }
        if self.request_timeout_seconds == 0 || self.connect_timeout_seconds == 0 {
            return Err("storage.request_timeout_seconds and storage.connect_timeout_seconds must be at least 1".into());
        }
        if self.breaker_failures == 0 {
            return Err("storage.breaker_failures must be at least 1".into());
        }
        if self.access_key_id.is_empty() != self.secret_access_key.0.is_empty() {
            return Err("storage.access_key_id and storage.secret_access_key are set together or not at all".into());
        }
        Ok(())
    }

    /// Where the store is, for a log line (no credentials).
    pub fn describe(&self, data_dir: &Path) -> String {
        match self.backend {
            Backend::Filesystem => format!("file://{}", data_dir.display()),
            Backend::S3 => {
                let at = if self.endpoint.is_empty() { String::new() } else { format!(" at {}", self.endpoint) };
                let prefix = self.prefix.trim_matches('/');
                let slash = if prefix.is_empty() { "" } else { "/" };
                format!("s3://{}{slash}{prefix}{at}", self.bucket)
            }
        }
    }
}

/// Builds the configured store (filesystem: under `data_dir`, created if
/// missing), guarded and counted in `telemetry`; a bucket's ranged reads
/// are cached on local disk (counted in `cache`).
pub fn open(
    config: &StorageConfig,
    data_dir: &Path,
    telemetry: &ObjectStoreTelemetry,
    cache: &CacheTelemetry,
) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let err = |e: object_store::Error| StorageError::ObjectStore(e.to_string());
    let inner: Arc<dyn ObjectStore> = match config.backend {
        Backend::Filesystem => {
            std::fs::create_dir_all(data_dir).map_err(StorageError::io(data_dir))?;
            Arc::new(LocalFileSystem::new_with_prefix(data_dir).map_err(err)?)
        }
        Backend::S3 => {
            let client = ClientOptions::new()
                .with_timeout(Duration::from_secs(config.request_timeout_seconds))
                .with_connect_timeout(Duration::from_secs(config.connect_timeout_seconds))
                .with_allow_http(config.endpoint.starts_with("http://"));
            let retry = RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: config.max_retries,
                retry_timeout: Duration::from_secs(config.retry_timeout_seconds),
            };
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&config.bucket)
                .with_region(&config.region)
                .with_virtual_hosted_style_request(config.virtual_hosted_style)
                .with_client_options(client)
                .with_retry(retry);
            if !config.endpoint.is_empty() {
                builder = builder.with_endpoint(&config.endpoint);
            }
            if !config.access_key_id.is_empty() {
                builder = builder
                    .with_access_key_id(&config.access_key_id)
                    .with_secret_access_key(&config.secret_access_key.0);
            }
            let s3 = builder.build().map_err(err)?;
            match config.prefix.trim_matches('/') {
                "" => Arc::new(s3),
                prefix => Arc::new(PrefixStore::new(s3, prefix)),
            }
        }
    };
    let breaker = guard::Breaker::new(config.breaker_failures, Duration::from_secs(config.breaker_cooldown_seconds));
    let guarded: Arc<dyn ObjectStore> = Arc::new(Guarded::new(inner, breaker, telemetry.clone()));
    if config.backend == Backend::Filesystem || config.cache_bytes == 0 {
        return Ok(guarded);
    }
    let dir = match config.cache_dir.as_str() {
        "" => data_dir.join("cache"),
        dir => dir.into(),
    };
    Ok(Arc::new(Cached::new(guarded, dir, config.cache_bytes, cache.clone())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_needs_its_name_and_both_keys_or_neither() {
        assert_eq!(StorageConfig::default().validate(), Ok(()), "the filesystem needs nothing");
        let s3 = StorageConfig { backend: Backend::S3, ..StorageConfig::default() };
        assert!(s3.validate().is_err_and(|e| e.contains("storage.bucket")));
        let named = StorageConfig { bucket: "b".into(), ..s3 };
        assert_eq!(named.validate(), Ok(()), "keys from the environment");
        let half = StorageConfig { access_key_id: "k".into(), ..named.clone() };
        assert!(half.validate().is_err_and(|e| e.contains("secret_access_key")));
        let keyed = StorageConfig { secret_access_key: Secret("s".into()), ..half };
        assert_eq!(keyed.validate(), Ok(()));
        let prefixed = StorageConfig { prefix: "/team/".into(), endpoint: "http://h:1".into(), ..named };
        assert_eq!(prefixed.describe(Path::new("/d")), "s3://b/team at http://h:1");
    }

    #[test]
    fn the_secret_key_is_never_printed() {
        let config = StorageConfig { secret_access_key: Secret("hunter2".into()), ..StorageConfig::default() };
        assert!(!format!("{config:?}").contains("hunter2"));
        let json = serde_json::to_string(&config).expect("serialise");
        assert!(!json.contains("hunter2") && json.contains("<redacted>"), "{json}");
        let read: StorageConfig = serde_json::from_str(r#"{"secret_access_key": "hunter2"}"#).expect("parse");
        assert_eq!(read.secret_access_key.0, "hunter2", "it is read as given");
    }
}
