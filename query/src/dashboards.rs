//! Dashboards saved by the web UI, one JSON document per dashboard and
//! tenant under `<data>/dashboards/t-<tenant>/<id>.json`. The server checks
//! only the envelope (an object with a `title`); the panels are the UI's.
//! Served under `/api/dashboards` (`http/dashboards.rs`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sightline_storage::model::Tenant;

use crate::error::ApiError;

/// A dashboard document may be this large.
pub const MAX_BYTES: usize = 1 << 20;
/// A tenant may keep this many dashboards.
const MAX_PER_TENANT: usize = 1000;

#[derive(Clone, Debug)]
pub struct DashboardStore {
    dir: PathBuf,
}

impl DashboardStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// `t-` keeps every tenant name (even `..`) a plain folder name.
    fn tenant_dir(&self, tenant: &Tenant) -> PathBuf {
        self.dir.join(format!("t-{}", tenant.as_str()))
    }

    fn path(&self, tenant: &Tenant, id: &str) -> Result<PathBuf, ApiError> {
        let ok =
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(ApiError::BadRequest(format!("dashboard id {id:?}: use 1 to 64 letters, digits, '-' or '_'")));
        }
        Ok(self.tenant_dir(tenant).join(format!("{id}.json")))
    }

    pub fn list(&self, tenant: &Tenant) -> Result<Vec<Value>, ApiError> {
        let dir = self.tenant_dir(tenant);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else { continue };
            if let Ok(doc) = self.get(tenant, id) {
                out.push(json!({ "id": id, "title": doc["title"] }));
            }
        }
        out.sort_by(|a, b| a["title"].as_str().unwrap_or("").cmp(b["title"].as_str().unwrap_or("")));
        Ok(out)
    }

    pub fn get(&self, tenant: &Tenant, id: &str) -> Result<Value, ApiError> {
        let path = self.path(tenant, id)?;
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ApiError::NotFound(format!("dashboard {id} not found")),
            _ => io_error(&path, e),
        })?;
        let mut doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Internal(format!("{} is not JSON: {e}", path.display())))?;
        doc["id"] = json!(id);
        Ok(doc)
    }

    /// Writes the document whole or not at all: a temporary file, synced,
    /// renamed over the old one.
    pub fn put(&self, tenant: &Tenant, id: &str, mut doc: Value) -> Result<(), ApiError> {
        let path = self.path(tenant, id)?;
        check(&doc)?;
        if !path.exists() && self.list(tenant)?.len() >= MAX_PER_TENANT {
            return Err(ApiError::BadRequest(format!("a tenant keeps at most {MAX_PER_TENANT} dashboards")));
        }
        doc["id"] = json!(id);
        let dir = self.tenant_dir(tenant);
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let tmp = dir.join(format!(".{id}.json.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|e| io_error(&path, e))
    }

    pub fn delete(&self, tenant: &Tenant, id: &str) -> Result<(), ApiError> {
        let path = self.path(tenant, id)?;
        std::fs::remove_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ApiError::NotFound(format!("dashboard {id} not found")),
            _ => io_error(&path, e),
        })
    }

    /// A fresh id from the title: `service-latency`, `service-latency-2`, …
    pub fn new_id(&self, tenant: &Tenant, title: &str) -> String {
        let mut base: String = title
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        base.truncate(48);
        if base.is_empty() {
            base = "dashboard".into();
        }
        let taken = |id: &str| self.tenant_dir(tenant).join(format!("{id}.json")).exists();
        let mut id = base.clone();
        let mut n = 2;
        while taken(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }
}

pub fn check(doc: &Value) -> Result<(), ApiError> {
    let title = doc.get("title").and_then(Value::as_str).unwrap_or("");
    if !doc.is_object() || title.trim().is_empty() {
        return Err(ApiError::BadRequest("a dashboard is a JSON object with a non-empty \"title\"".into()));
    }
    Ok(())
}

fn io_error(path: &Path, e: std::io::Error) -> ApiError {
    ApiError::Internal(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> Tenant {
        Tenant::new(name).expect("tenant")
    }

    #[test]
    fn saved_per_tenant_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DashboardStore::new(dir.path().to_owned());
        let doc = json!({ "title": "Checkout", "panels": [{ "type": "stat", "query": "up" }] });
        store.put(&tenant("a"), "checkout", doc).expect("put");
        let reopened = DashboardStore::new(dir.path().to_owned());
        let got = reopened.get(&tenant("a"), "checkout").expect("get");
        assert_eq!(got["panels"][0]["query"], "up");
        assert_eq!(got["id"], "checkout");
        assert!(matches!(reopened.get(&tenant("b"), "checkout"), Err(ApiError::NotFound(_))));
        assert_eq!(reopened.list(&tenant("a")).expect("list"), vec![json!({ "id": "checkout", "title": "Checkout" })]);
        assert_eq!(reopened.new_id(&tenant("a"), "Checkout!"), "checkout-2");
        reopened.delete(&tenant("a"), "checkout").expect("delete");
        assert!(reopened.list(&tenant("a")).expect("list").is_empty());
    }

    #[test]
    fn refuses_bad_ids_and_documents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DashboardStore::new(dir.path().to_owned());
        for id in ["", "../x", "a/b", ".hidden", &"x".repeat(65)] {
            assert!(matches!(store.put(&tenant("a"), id, json!({"title": "t"})), Err(ApiError::BadRequest(_))), "{id}");
        }
        for doc in [json!([1]), json!({}), json!({ "title": " " }), json!({ "title": 3 })] {
            assert!(matches!(store.put(&tenant("a"), "x", doc.clone()), Err(ApiError::BadRequest(_))), "{doc}");
        }
        // The tenant `..` stays inside the store.
        store.put(&tenant(".."), "x", json!({ "title": "t" })).expect("put");
        assert!(dir.path().join("t-..").join("x.json").exists());
    }
}
