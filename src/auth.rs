//! Authentication and authorisation: API keys (bearer tokens), each mapped
//! to a tenant and a role. Off by default; `[auth] enabled = true` turns it
//! on for every surface. With it on, the tenant comes from the key, never
//! from a header the client chose.
//!
//! Keys are kept as SHA-256 digests; a presented token is hashed and
//! compared with every key in constant time. Tokens are never logged.

pub mod grpc;
pub mod http;
pub mod keys;

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sightline_storage::model::Tenant;

pub use keys::{KeyEntry, KeySet};

/// What a key may do. `Admin` may do everything for its tenant.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// OTLP export and Prometheus remote write.
    Ingest,
    /// Every query API, the UI's data and `/metrics`.
    Read,
    /// Ingest, read, and changing dashboards.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    /// Whether a key of this role may do what needs `need`.
    pub fn allows(self, need: Role) -> bool {
        self == Role::Admin || self == need
    }
}

/// Who `/metrics` is served to when authentication is on.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MetricsAccess {
    /// Anyone (a scraper without credentials).
    Open,
    /// Keys with the read or admin role.
    Read,
    /// Admin keys only.
    Admin,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub enabled: bool,
    /// A TOML file of `[[keys]]`, re-read when it changes.
    pub keys_file: Option<PathBuf>,
    /// Keys written in the configuration itself.
    pub keys: Vec<KeyEntry>,
    pub metrics: MetricsAccess,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { enabled: false, keys_file: None, keys: Vec::new(), metrics: MetricsAccess::Read }
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.keys.is_empty() && self.keys_file.is_none() {
            return Err("auth.enabled is true but there is neither auth.keys nor auth.keys_file".into());
        }
        KeySet::from_entries(&self.keys).map(|_| ()).map_err(|e| format!("auth.keys: {e}"))
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: Tenant,
    pub role: Role,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Denied {
    #[error("authentication required: send Authorization: Bearer <token>")]
    Missing,
    #[error("the token is not valid")]
    Invalid,
    #[error("a key with the {have} role may not {what}")]
    Role { have: &'static str, what: &'static str },
}

impl Denied {
    /// 401 / UNAUTHENTICATED rather than 403 / PERMISSION_DENIED.
    pub fn unauthenticated(&self) -> bool {
        !matches!(self, Denied::Role { .. })
    }
}

/// The live key set; the keys file watcher swaps it.
#[derive(Clone)]
pub struct Auth {
    config_keys: Arc<KeySet>,
    keys: Arc<RwLock<Arc<KeySet>>>,
}

impl Auth {
    /// `None` when authentication is off. Reads the keys file once; a
    /// missing or invalid file at start is an error.
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Option<Auth>> {
        if !config.enabled {
            return Ok(None);
        }
        let config_keys = Arc::new(KeySet::from_entries(&config.keys).map_err(|e| anyhow::anyhow!("auth.keys: {e}"))?);
        let auth = Auth { keys: Arc::new(RwLock::new(config_keys.clone())), config_keys };
        if let Some(path) = &config.keys_file {
            let file = keys::read_file(path)?;
            auth.install(file)?;
        }
        Ok(Some(auth))
    }

    /// Replaces the file's keys (the configuration's stay).
    fn install(&self, file: KeySet) -> anyhow::Result<()> {
        let merged = self.config_keys.merged(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
        *self.keys.write() = Arc::new(merged);
        Ok(())
    }

    pub fn key_count(&self) -> usize {
        self.keys.read().len()
    }

    /// The caller that `authorization` (the header's value) names.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Caller, Denied> {
        let token = keys::token_of(authorization.ok_or(Denied::Missing)?).ok_or(Denied::Invalid)?;
        let keys = self.keys.read().clone();
        keys.find(&token).map(|k| Caller { tenant: k.tenant.clone(), role: k.role }).ok_or(Denied::Invalid)
    }

    /// Authenticates, then checks that the key's role allows `need`.
    pub fn check(&self, authorization: Option<&[u8]>, need: Role, what: &'static str) -> Result<Caller, Denied> {
        let caller = self.authenticate(authorization)?;
        if caller.role.allows(need) { Ok(caller) } else { Err(Denied::Role { have: caller.role.as_str(), what }) }
    }
}
