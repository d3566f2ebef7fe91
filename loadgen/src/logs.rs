//! Log lines: eight services with three instances each, templated messages
//! with ids and numbers, mostly INFO with some DEBUG, WARN and ERROR, 5–15
//! attributes, a trace id on most lines.

use sightline_proto::otlp::ExportLogsServiceRequest;
use sightline_proto::otlp::common::any_value::Value;
use sightline_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue};
use sightline_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use sightline_proto::otlp::resource::Resource;

use crate::{Rng, kv, text};

const SERVICES: [&str; 8] = ["gateway", "checkout", "payments", "inventory", "users", "search", "shipping", "email"];
const ROUTES: [&str; 6] = ["/api/orders", "/api/cart", "/api/pay", "/api/items/{id}", "/api/users/{id}", "/api/search"];
const TABLES: [&str; 4] = ["orders", "order_items", "customers", "stock"];
const DEPS: [&str; 4] = ["payments-db", "redis", "inventory", "smtp.mail.local"];
const INSTANCES: usize = SERVICES.len() * 3;

pub struct LogGen {
    rng: Rng,
}

impl LogGen {
    pub fn new(seed: u64) -> Self {
        LogGen { rng: Rng::new(seed) }
    }

    fn resource(instance: usize) -> Resource {
        let (s, i) = (SERVICES[instance / 3], instance % 3);
        Resource {
            attributes: vec![
                text("service.name", s),
                text("service.namespace", "shop"),
                text("service.version", "1.4.2"),
                text("host.name", format!("{s}-{i}")),
                text("k8s.pod.name", format!("{s}-7d9f8b-{i}x2q")),
                text("k8s.namespace.name", "prod"),
                text("deployment.environment", "production"),
            ],
            ..Default::default()
        }
    }

    /// A severity number and a message.
    fn message(&mut self) -> (i32, String) {
        let r = &mut self.rng;
        let ms = r.below(2000);
        let id = r.below(10_000_000);
        match r.below(100) {
            0..=29 => {
                let status = [200, 200, 201, 404][r.below(4) as usize];
                (9, format!("GET {} {status} {ms}ms user_id={id}", r.pick(&ROUTES)))
            }
            30..=41 => {
                let (customer, euros, cents) = (r.below(100_000), r.below(500), r.below(100));
                (9, format!("order {id} placed by customer {customer} total={euros}.{cents:02} EUR"))
            }
            42..=49 => (5, format!("cache miss for key product:{id}")),
            50..=56 => (9, format!("inventory reserved {} items for order {id}", 1 + r.below(9))),
            57..=63 => {
                (9, format!("published event order.created to topic orders partition={} offset={id}", r.below(12)))
            }
            64..=69 => (9, format!("user {id} logged in from 10.{}.{}.{}", r.below(255), r.below(255), r.below(255))),
            70..=75 => (5, format!("health check ok in {}ms", r.below(20))),
            76..=83 => (13, format!("slow query on {}: {ms} ms rows={}", r.pick(&TABLES), r.below(100_000))),
            84..=91 => {
                let dep = r.pick(&DEPS);
                (13, format!("timeout waiting for {dep} after {ms}ms, retrying (attempt {}/3)", 1 + r.below(3)))
            }
            92..=95 => (17, format!("connection refused by {}:{} after {ms} ms", r.pick(&DEPS), 5432 + r.below(4))),
            96..=98 => (17, format!("payment {id} failed: card_declined (attempt {})", 1 + r.below(3))),
            _ => (
                17,
                format!("java.lang.NullPointerException at com.shop.Handler.process(Handler.java:{})", r.below(900)),
            ),
        }
    }

    fn attributes(&mut self) -> Vec<KeyValue> {
        let r = &mut self.rng;
        let pool = [
            text("http.method", ["GET", "POST", "PUT"][r.below(3) as usize]),
            text("http.route", r.pick(&ROUTES)),
            kv("http.status_code", Value::IntValue([200, 201, 404, 500][r.below(4) as usize])),
            text("user.id", format!("u-{}", r.below(100_000))),
            kv("order.id", Value::IntValue(r.below(10_000_000) as i64)),
            kv("duration_ms", Value::DoubleValue(r.below(200_000) as f64 / 100.0)),
            text("thread.name", format!("worker-{}", r.below(16))),
            text("logger.name", "com.shop.Handler"),
            text("code.function", ["process", "handle", "reserve", "charge"][r.below(4) as usize]),
            kv("code.lineno", Value::IntValue(r.below(900) as i64)),
            text("net.peer.name", r.pick(&DEPS)),
            kv("retry", Value::BoolValue(r.below(10) == 0)),
            text("region", ["eu-west-1", "us-east-1"][r.below(2) as usize]),
            text("tenant.plan", ["free", "pro", "enterprise"][r.below(3) as usize]),
            kv("request.bytes", Value::IntValue(r.below(65_536) as i64)),
        ];
        let n = 5 + r.below(11) as usize;
        pool.into_iter().take(n).collect()
    }

    /// One record at `time_unix_nano`, and the instance (resource) it comes from.
    pub fn record(&mut self, time_unix_nano: u64) -> (usize, LogRecord) {
        let (severity, body) = self.message();
        let instance = self.rng.below(INSTANCES as u64) as usize;
        let attributes = self.attributes();
        let r = &mut self.rng;
        let traced = r.below(10) < 6;
        let trace_id = if traced { r.id16().to_vec() } else { Vec::new() };
        let span_id = if traced { r.next_u64().to_be_bytes().to_vec() } else { Vec::new() };
        let record = LogRecord {
            time_unix_nano,
            observed_time_unix_nano: time_unix_nano + 1_000_000,
            severity_number: severity,
            body: Some(AnyValue { value: Some(Value::StringValue(body)) }),
            attributes,
            trace_id,
            span_id,
            ..Default::default()
        };
        (instance, record)
    }

    /// `lines` records, `step_ns` apart from `base_ns`, grouped by resource.
    pub fn request(&mut self, lines: usize, base_ns: u64, step_ns: u64) -> ExportLogsServiceRequest {
        let mut by_instance: Vec<Vec<LogRecord>> = vec![Vec::new(); INSTANCES];
        for i in 0..lines {
            let (instance, record) = self.record(base_ns + i as u64 * step_ns);
            by_instance[instance].push(record);
        }
        let scope = InstrumentationScope { name: "app.logger".into(), ..Default::default() };
        ExportLogsServiceRequest {
            resource_logs: by_instance
                .into_iter()
                .enumerate()
                .filter(|(_, records)| !records.is_empty())
                .map(|(instance, log_records)| ResourceLogs {
                    resource: Some(Self::resource(instance)),
                    scope_logs: vec![ScopeLogs { scope: Some(scope.clone()), log_records, schema_url: String::new() }],
                    schema_url: String::new(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_lines_with_ids_and_attributes() {
        let a = LogGen::new(3).request(500, 1_000, 10);
        assert_eq!(a, LogGen::new(3).request(500, 1_000, 10));
        let records: Vec<&LogRecord> = a.resource_logs.iter().flat_map(|r| &r.scope_logs[0].log_records).collect();
        assert_eq!(records.len(), 500);
        assert!(records.iter().all(|r| (5..=15).contains(&r.attributes.len())));
        let traced = records.iter().filter(|r| r.trace_id.len() == 16).count();
        assert!((200..400).contains(&traced), "{traced} of 500 carry a trace id");
        assert!(records.iter().any(|r| r.severity_number == 17));
    }
}
