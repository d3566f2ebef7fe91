//! Dashboards saved by the web UI, one JSON document per dashboard and
//! tenant at `dashboards/t-<tenant>/<id>.json` in the object store (the
//! data directory, or the bucket: `[storage]`). The server checks
//! only the envelope (an object with a `title`); the panels are the UI's.
//! Served under `/api/dashboards` (`http/dashboards.rs`).

use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};
use sightline_storage::model::Tenant;

use crate::error::ApiError;

/// A dashboard document may be this large.
pub const MAX_BYTES: usize = 1 << 20;
/// A tenant may keep this many dashboards.
const MAX_PER_TENANT: usize = 1000;

#[derive(Clone, Debug)]
pub struct DashboardStore {
    objects: Arc<dyn ObjectStore>,
}

impl DashboardStore {
    /// Dashboards under `dashboards/` of the store the parts are in.
    pub fn new(objects: Arc<dyn ObjectStore>) -> Self {
        Self { objects }
    }

    /// `t-` keeps every tenant name (even `..`) a plain folder name.
    fn tenant_dir(tenant: &Tenant) -> Path {
        Path::from_iter(["dashboards".to_owned(), format!("t-{}", tenant.as_str())])
    }

    fn path(tenant: &Tenant, id: &str) -> Result<Path, ApiError> {
        let ok =
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(ApiError::BadRequest(format!("dashboard id {id:?}: use 1 to 64 letters, digits, '-' or '_'")));
        }
        Ok(Self::tenant_dir(tenant).join(format!("{id}.json")))
    }

    /// The tenant's dashboard ids.
    async fn ids(&self, tenant: &Tenant) -> Result<Vec<String>, ApiError> {
        let dir = Self::tenant_dir(tenant);
        let objects: Vec<_> = self.objects.list(Some(&dir)).try_collect().await.map_err(|e| store_error(&dir, e))?;
        Ok(objects
            .into_iter()
            .filter_map(|o| o.location.filename().and_then(|f| f.strip_suffix(".json")).map(str::to_owned))
            .collect())
    }

    pub async fn list(&self, tenant: &Tenant) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        for id in self.ids(tenant).await? {
            if let Ok(doc) = self.get(tenant, &id).await {
                out.push(json!({ "id": id, "title": doc["title"] }));
            }
        }
        out.sort_by(|a, b| a["title"].as_str().unwrap_or("").cmp(b["title"].as_str().unwrap_or("")));
        Ok(out)
    }

    pub async fn get(&self, tenant: &Tenant, id: &str) -> Result<Value, ApiError> {
        let path = Self::path(tenant, id)?;
        let read = async { self.objects.get(&path).await?.bytes().await };
        let bytes = read.await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => ApiError::NotFound(format!("dashboard {id} not found")),
            e => store_error(&path, e),
        })?;
        let mut doc: Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Internal(format!("{path} is not JSON: {e}")))?;
        doc["id"] = json!(id);
        Ok(doc)
    }

    /// Writes the document whole or not at all (an object store's put).
    pub async fn put(&self, tenant: &Tenant, id: &str, mut doc: Value) -> Result<(), ApiError> {
        let path = Self::path(tenant, id)?;
        check(&doc)?;
        let ids = self.ids(tenant).await?;
        if !ids.iter().any(|i| i == id) && ids.len() >= MAX_PER_TENANT {
            return Err(ApiError::BadRequest(format!("a tenant keeps at most {MAX_PER_TENANT} dashboards")));
        }
        doc["id"] = json!(id);
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
        self.objects.put(&path, bytes.into()).await.map_err(|e| store_error(&path, e))?;
        Ok(())
    }

    pub async fn delete(&self, tenant: &Tenant, id: &str) -> Result<(), ApiError> {
        let path = Self::path(tenant, id)?;
        // A store's delete of a missing object may succeed: look first.
        self.objects.head(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => ApiError::NotFound(format!("dashboard {id} not found")),
            e => store_error(&path, e),
        })?;
        self.objects.delete(&path).await.map_err(|e| store_error(&path, e))
    }

    /// A fresh id from the title: `service-latency`, `service-latency-2`, …
    pub async fn new_id(&self, tenant: &Tenant, title: &str) -> Result<String, ApiError> {
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
        let taken = self.ids(tenant).await?;
        let mut id = base.clone();
        let mut n = 2;
        while taken.contains(&id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        Ok(id)
    }
}

pub fn check(doc: &Value) -> Result<(), ApiError> {
    let title = doc.get("title").and_then(Value::as_str).unwrap_or("");
    if !doc.is_object() || title.trim().is_empty() {
        return Err(ApiError::BadRequest("a dashboard is a JSON object with a non-empty \"title\"".into()));
    }
    Ok(())
}

fn store_error(path: &Path, e: object_store::Error) -> ApiError {
    ApiError::Internal(format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use object_store::local::LocalFileSystem;

    use super::*;

    fn tenant(name: &str) -> Tenant {
        Tenant::new(name).expect("tenant")
    }

    fn store(dir: &std::path::Path) -> DashboardStore {
        DashboardStore::new(Arc::new(LocalFileSystem::new_with_prefix(dir).expect("fs")))
    }

    #[tokio::test]
    async fn saved_per_tenant_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let doc = json!({ "title": "Checkout", "panels": [{ "type": "stat", "query": "up" }] });
        store(dir.path()).put(&tenant("a"), "checkout", doc).await.expect("put");
        let reopened = store(dir.path());
        let got = reopened.get(&tenant("a"), "checkout").await.expect("get");
        assert_eq!(got["panels"][0]["query"], "up");
        assert_eq!(got["id"], "checkout");
        assert!(matches!(reopened.get(&tenant("b"), "checkout").await, Err(ApiError::NotFound(_))));
        let list = reopened.list(&tenant("a")).await.expect("list");
        assert_eq!(list, vec![json!({ "id": "checkout", "title": "Checkout" })]);
        assert_eq!(reopened.new_id(&tenant("a"), "Checkout!").await.expect("id"), "checkout-2");
        reopened.delete(&tenant("a"), "checkout").await.expect("delete");
        assert!(reopened.list(&tenant("a")).await.expect("list").is_empty());
        assert!(matches!(reopened.delete(&tenant("a"), "checkout").await, Err(ApiError::NotFound(_))));
    }

    #[tokio::test]
    async fn refuses_bad_ids_and_documents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path());
        for id in ["", "../x", "a/b", ".hidden", &"x".repeat(65)] {
            let put = store.put(&tenant("a"), id, json!({"title": "t"})).await;
            assert!(matches!(put, Err(ApiError::BadRequest(_))), "{id}");
        }
        for doc in [json!([1]), json!({}), json!({ "title": " " }), json!({ "title": 3 })] {
            assert!(matches!(store.put(&tenant("a"), "x", doc.clone()).await, Err(ApiError::BadRequest(_))), "{doc}");
        }
        // The tenant `..` stays inside the store.
        store.put(&tenant(".."), "x", json!({ "title": "t" })).await.expect("put");
        assert!(dir.path().join("dashboards").join("t-..").join("x.json").exists());
    }
}
