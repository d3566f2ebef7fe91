//! Seeded, realistic log records for the benchmarks: eight services with
//! three instances each, templated messages with ids and numbers, mostly
//! INFO with some DEBUG, WARN and ERROR, 5–15 attributes, a trace id on
//! most lines. The same seed gives the same lines.

use std::sync::Arc;

use sightline_storage::model::{AttrValue, Attributes, LogRecord, Resource, Scope, SpanId, TraceId};

use crate::otlp_gen::Rng;

const SERVICES: [&str; 8] = ["gateway", "checkout", "payments", "inventory", "users", "search", "shipping", "email"];
const ROUTES: [&str; 6] = ["/api/orders", "/api/cart", "/api/pay", "/api/items/{id}", "/api/users/{id}", "/api/search"];
const TABLES: [&str; 4] = ["orders", "order_items", "customers", "stock"];
const DEPS: [&str; 4] = ["payments-db", "redis", "inventory", "smtp.mail.local"];

pub struct LogGen {
    rng: Rng,
    resources: Vec<Arc<Resource>>,
    scope: Arc<Scope>,
}

impl LogGen {
    pub fn new(seed: u64) -> Self {
        let resources = SERVICES
            .iter()
            .flat_map(|s| (0..3).map(move |i| (s, i)))
            .map(|(s, i)| {
                let str = |k: &str, v: String| (k.to_owned(), AttrValue::Str(v));
                Arc::new(Resource {
                    service: (*s).to_owned(),
                    attributes: Attributes(vec![
                        str("service.name", (*s).to_owned()),
                        str("service.namespace", "shop".into()),
                        str("service.version", "1.4.2".into()),
                        str("host.name", format!("{s}-{i}")),
                        str("k8s.pod.name", format!("{s}-7d9f8b-{i}x2q")),
                        str("k8s.namespace.name", "prod".into()),
                        str("deployment.environment", "production".into()),
                    ]),
                })
            })
            .collect();
        let scope = Arc::new(Scope { name: "app.logger".into(), version: String::new() });
        LogGen { rng: Rng(seed | 1), resources, scope }
    }

    fn message(&mut self) -> (u8, String) {
        let r = &mut self.rng;
        let ms = r.below(2000);
        let id = r.below(10_000_000);
        match r.below(100) {
            0..=29 => (
                9,
                format!(
                    "GET {} {} {}ms user_id={}",
                    r.pick(&ROUTES),
                    [200, 200, 201, 404][r.below(4) as usize],
                    ms,
                    id
                ),
            ),
            30..=41 => (
                9,
                format!(
                    "order {id} placed by customer {} total={}.{:02} EUR",
                    r.below(100_000),
                    r.below(500),
                    r.below(100)
                ),
            ),
            42..=49 => (5, format!("cache miss for key product:{id}")),
            50..=56 => (9, format!("inventory reserved {} items for order {id}", 1 + r.below(9))),
            57..=63 => {
                (9, format!("published event order.created to topic orders partition={} offset={id}", r.below(12)))
            }
            64..=69 => (9, format!("user {id} logged in from 10.{}.{}.{}", r.below(255), r.below(255), r.below(255))),
            70..=75 => (5, format!("health check ok in {}ms", r.below(20))),
            76..=83 => (13, format!("slow query on {}: {ms} ms rows={}", r.pick(&TABLES), r.below(100_000))),
            84..=91 => (
                13,
                format!("timeout waiting for {} after {ms}ms, retrying (attempt {}/3)", r.pick(&DEPS), 1 + r.below(3)),
            ),
            92..=95 => (17, format!("connection refused by {}:{} after {ms} ms", r.pick(&DEPS), 5432 + r.below(4))),
            96..=98 => (17, format!("payment {id} failed: card_declined (attempt {})", 1 + r.below(3))),
            _ => (
                17,
                format!("java.lang.NullPointerException at com.shop.Handler.process(Handler.java:{})", r.below(900)),
            ),
        }
    }

    /// One record at `time_unix_nano`.
    pub fn record(&mut self, time_unix_nano: u64) -> LogRecord {
        let (severity, body) = self.message();
        let r = &mut self.rng;
        let resource = self.resources[r.below(self.resources.len() as u64) as usize].clone();
        let pool: [(&str, AttrValue); 15] = [
            ("http.method", AttrValue::Str(["GET", "POST", "PUT"][r.below(3) as usize].into())),
            ("http.route", AttrValue::Str(r.pick(&ROUTES).into())),
            ("http.status_code", AttrValue::Int([200, 201, 404, 500][r.below(4) as usize])),
            ("user.id", AttrValue::Str(format!("u-{}", r.below(100_000)))),
            ("order.id", AttrValue::Int(r.below(10_000_000) as i64)),
            ("duration_ms", AttrValue::Double(r.below(200_000) as f64 / 100.0)),
            ("thread.name", AttrValue::Str(format!("worker-{}", r.below(16)))),
            ("logger.name", AttrValue::Str("com.shop.Handler".into())),
            ("code.function", AttrValue::Str(["process", "handle", "reserve", "charge"][r.below(4) as usize].into())),
            ("code.lineno", AttrValue::Int(r.below(900) as i64)),
            ("net.peer.name", AttrValue::Str(r.pick(&DEPS).into())),
            ("retry", AttrValue::Bool(r.below(10) == 0)),
            ("region", AttrValue::Str(["eu-west-1", "us-east-1"][r.below(2) as usize].into())),
            ("tenant.plan", AttrValue::Str(["free", "pro", "enterprise"][r.below(3) as usize].into())),
            ("request.bytes", AttrValue::Int(r.below(65_536) as i64)),
        ];
        let n = 5 + r.below(11) as usize;
        let attributes = Attributes(pool.into_iter().take(n).map(|(k, v)| (k.to_owned(), v)).collect());
        let traced = r.below(10) < 6;
        let trace_id = traced.then(|| {
            let mut t = [0u8; 16];
            t[..8].copy_from_slice(&r.next().to_be_bytes());
            t[8..].copy_from_slice(&r.next().to_be_bytes());
            TraceId(t)
        });
        let span_id = traced.then(|| SpanId(r.next().to_be_bytes()));
        LogRecord {
            time_unix_nano,
            observed_unix_nano: time_unix_nano + 1_000_000,
            severity_number: severity,
            severity_text: String::new(),
            body: AttrValue::Str(body),
            attributes,
            trace_id,
            span_id,
            event_name: String::new(),
            resource,
            scope: self.scope.clone(),
        }
    }
}

/// The record as a JSON log line, the raw form a log shipper would write.
pub fn json_line(r: &LogRecord) -> String {
    let mut line = serde_json::json!({
        "timestamp": r.time_unix_nano,
        "severity": r.severity_number,
        "body": r.body.to_text(),
        "trace_id": r.trace_id.map(|t| t.to_hex()),
        "span_id": r.span_id.map(|s| s.to_hex()),
        "attributes": r.attributes.to_json(),
        "resource": r.resource.attributes.to_json(),
    })
    .to_string();
    line.push('\n');
    line
}
