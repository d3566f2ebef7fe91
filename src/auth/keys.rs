//! API keys: how they are written (in the configuration or a keys file),
//! kept (SHA-256 digests) and found (constant-time comparison with each).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sightline_storage::model::Tenant;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use super::{Auth, Role};

/// One key as written: the token itself, or (better) its SHA-256 in hex.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// A label for the operator; never the token.
    #[serde(default)]
    pub name: String,
    pub tenant: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
}

pub struct Key {
    digest: [u8; 32],
    pub tenant: Tenant,
    pub role: Role,
}

#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

pub fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl KeySet {
    pub fn from_entries(entries: &[KeyEntry]) -> Result<KeySet, String> {
        let mut set = KeySet::default();
        for (i, e) in entries.iter().enumerate() {
            let label = if e.name.is_empty() { format!("key {}", i + 1) } else { format!("key {:?}", e.name) };
            let tenant = Tenant::new(&e.tenant).map_err(|err| format!("{label}: {err}"))?;
            let digest = match (&e.token, &e.token_sha256) {
                (Some(t), None) if t.len() >= 16 => digest(t.as_bytes()),
                (Some(_), None) => return Err(format!("{label}: a token must have at least 16 characters")),
                (None, Some(hex)) => {
                    let mut d = [0u8; 32];
                    hex::decode_to_slice(hex.trim(), &mut d)
                        .map_err(|_| format!("{label}: token_sha256 must be 64 hexadecimal digits"))?;
                    d
                }
                _ => return Err(format!("{label}: give exactly one of token and token_sha256")),
            };
            set.push(Key { digest, tenant, role: e.role })?;
        }
        Ok(set)
    }

    fn push(&mut self, key: Key) -> Result<(), String> {
        if self.keys.iter().any(|k| bool::from(k.digest.ct_eq(&key.digest))) {
            return Err("the same token is given twice".into());
        }
        self.keys.push(key);
        Ok(())
    }

    /// This set and `other`'s keys together.
    pub fn merged(&self, other: &KeySet) -> Result<KeySet, String> {
        let mut set = KeySet::default();
        for k in self.keys.iter().chain(&other.keys) {
            set.push(Key { digest: k.digest, tenant: k.tenant.clone(), role: k.role })?;
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key of `token`. Every key is compared, in constant time, so the
    /// time taken says nothing about which key (or how much of one) matched.
    pub fn find(&self, token: &str) -> Option<&Key> {
        let presented = digest(token.as_bytes());
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&presented)) {
                found = Some(key);
            }
        }
        found
    }
}

/// The token in an `Authorization` value: `Bearer <token>`, or `Basic`
/// with the token as the password (any user name), as Prometheus's and
/// Grafana's basic-auth settings send it.
pub fn token_of(authorization: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(authorization).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!rest.is_empty()).then(|| rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        let token = if password.is_empty() { user } else { password };
        return (!token.is_empty()).then(|| token.to_owned());
    }
    None
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

/// Reads a keys file: `[[keys]]` tables as in `[[auth.keys]]`.
pub fn read_file(path: &Path) -> anyhow::Result<KeySet> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: KeysFile = toml::from_str(&text).with_context(|| format!("invalid keys file {}", path.display()))?;
    KeySet::from_entries(&file.keys).map_err(|e| anyhow::anyhow!("invalid keys file {}: {e}", path.display()))
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Re-reads the keys file when its modification time or size changes. A
/// file that no longer parses keeps the previous keys, and says so.
pub async fn watch(auth: Auth, path: PathBuf, every: Duration, cancel: CancellationToken) {
    let mut seen = stamp(&path);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        let read = path.clone();
        let loaded = tokio::task::spawn_blocking(move || read_file(&read)).await;
        match loaded.map_err(anyhow::Error::from).and_then(|r| r).and_then(|set| auth.install(set)) {
            Ok(()) => tracing::info!(file = %path.display(), keys = auth.key_count(), "reloaded the API keys"),
            Err(e) => tracing::error!(error = format!("{e:#}"), "keeping the previous API keys"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tenant: &str, role: Role, token: &str) -> KeyEntry {
        KeyEntry { name: String::new(), tenant: tenant.into(), role, token: Some(token.into()), token_sha256: None }
    }

    #[test]
    fn finds_keys_by_token_or_digest() {
        let hashed = KeyEntry {
            token: None,
            token_sha256: Some(hex::encode(digest(b"reader-token-0123456789"))),
            ..entry("b", Role::Read, "")
        };
        let set = KeySet::from_entries(&[entry("a", Role::Ingest, "ingest-token-0123456789"), hashed]).expect("keys");
        assert_eq!(set.find("ingest-token-0123456789").map(|k| k.tenant.as_str()), Some("a"));
        assert_eq!(set.find("reader-token-0123456789").map(|k| k.role), Some(Role::Read));
        assert!(set.find("reader-token-012345678").is_none());
        assert!(set.find("").is_none());
    }

    #[test]
    fn refuses_bad_entries() {
        assert!(KeySet::from_entries(&[entry("a", Role::Read, "short")]).is_err());
        assert!(KeySet::from_entries(&[entry("a b", Role::Read, "long-enough-token-1")]).is_err());
        let twice = [entry("a", Role::Read, "long-enough-token-1"), entry("b", Role::Admin, "long-enough-token-1")];
        assert!(KeySet::from_entries(&twice).is_err());
        let both = KeyEntry { token_sha256: Some("00".repeat(32)), ..entry("a", Role::Read, "long-enough-token-1") };
        assert!(KeySet::from_entries(&[both]).is_err());
        let bad_hex = KeyEntry { token: None, token_sha256: Some("xyz".into()), ..entry("a", Role::Read, "") };
        assert!(KeySet::from_entries(&[bad_hex]).is_err());
    }

    #[test]
    fn reads_bearer_and_basic() {
        assert_eq!(token_of(b"Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token_of(b"bearer   abc ").as_deref(), Some("abc"));
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("grafana:tok"));
        assert_eq!(token_of(basic.as_bytes()).as_deref(), Some("tok"));
        let user_only = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("tok:"));
        assert_eq!(token_of(user_only.as_bytes()).as_deref(), Some("tok"));
        assert_eq!(token_of(b"Bearer "), None);
        assert_eq!(token_of(b"abc"), None);
        assert_eq!(token_of(b"Basic !!!"), None);
        assert_eq!(token_of(&[0xff, 0xfe]), None);
    }
}
