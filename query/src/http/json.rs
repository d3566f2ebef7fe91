//! Small pieces the surfaces' response models share.

use std::fmt::Display;

use serde::{Serialize, Serializer};
use sightline_storage::model::{SpanKind, StatusCode};

/// A value written as its text: nanosecond times as decimal strings, since
/// JavaScript numbers lose precision past 2^53.
#[derive(Clone, Copy)]
pub struct Text<T>(pub T);

impl<T: Display> Serialize for Text<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// An instrumentation scope, as the native and log APIs show it.
#[derive(Serialize)]
pub struct Scope<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

pub fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

pub fn status_name(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    }
}

/// `…/status/buildinfo` as Prometheus shapes it (Tempo answers the same):
/// the API level Sightline answers, clients pick features by it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    pub version: &'static str,
    pub revision: &'static str,
    pub branch: &'static str,
    pub build_user: &'static str,
    pub build_date: &'static str,
    pub go_version: &'static str,
}

impl BuildInfo {
    /// Sightline at the given API level.
    pub fn at(version: &'static str) -> Self {
        BuildInfo {
            version,
            revision: "sightline",
            branch: "main",
            build_user: "sightline",
            build_date: "",
            go_version: concat!("sightline ", env!("CARGO_PKG_VERSION")),
        }
    }
}
