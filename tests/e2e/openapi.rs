//! The native API's OpenAPI document (`/api/openapi.json`) against the
//! routes the real server serves: every served path described, every
//! described path served with exactly the described methods, every `$ref`
//! resolved.

use std::collections::BTreeSet;

use serde_json::Value;
use sightline_testkit as common;

/// A path with its parameters unnamed: `/api/traces/{}`.
fn unnamed(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            c if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_native_routes() {
    let s = common::start(|_| {}).await;
    let response = reqwest::get(s.api_url("/api/openapi.json")).await.expect("GET");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");

    let described: BTreeSet<String> = paths.keys().map(|p| unnamed(p)).collect();
    let served: BTreeSet<String> =
        sightline_query::http::described_paths().chain(["/api/whoami"]).map(unnamed).collect();
    assert_eq!(described, served, "the document and the routers list the same paths");

    let client = reqwest::Client::new();
    let trace = reqwest::Method::from_bytes(b"TRACE").expect("method");
    for (path, item) in paths {
        let methods: BTreeSet<String> = item.as_object().expect("path item").keys().map(|m| m.to_uppercase()).collect();
        let url = s.api_url(&unnamed(path).replace("{}", "0af7651916cd43dd8448eb211c80319c"));
        let r = client.request(trace.clone(), url).send().await.expect("request");
        assert_eq!(r.status(), 405, "{path} is served (and TRACE is not one of its methods)");
        let allow = r.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let allowed: BTreeSet<String> =
            allow.split(',').map(|m| m.trim().to_owned()).filter(|m| !m.is_empty() && m != "HEAD").collect();
        assert_eq!(allowed, methods, "{path}: the described methods are the served ones");
    }

    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is local"));
        assert!(doc.pointer(pointer).is_some(), "{r} resolves");
    }
}
