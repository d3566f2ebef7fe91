//! Sends alerts to Alertmanager's API v2 (`POST /api/v2/alerts`), each
//! Alertmanager with its own bounded queue and sender task: a batch that
//! fails is retried with backoff (0.5 s doubling up to 30 s) while newer
//! alerts wait behind it; a full queue drops its oldest alerts. Evaluation
//! never waits for a send. Counted per Alertmanager in
//! `sightline_notifications_{sent,failed,dropped}_total` and
//! `sightline_notifications_queue_length`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::rule::Alert;

/// Alerts sent in one request, at most (Prometheus's batch size).
const MAX_BATCH: usize = 256;

/// An alert as Alertmanager's API v2 takes it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Posted {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

impl Posted {
    /// As Prometheus sends it: from when it fired, until it resolved or
    /// until it is valid (four resend periods ahead); external labels added
    /// where the alert has no label of that name.
    pub fn new(alert: &Alert, external_labels: &BTreeMap<String, String>, generator_url: String) -> Posted {
        let mut labels: BTreeMap<String, String> =
            alert.labels.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        for (k, v) in external_labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Posted {
            labels,
            annotations: alert.annotations.clone(),
            starts_at: rfc3339(alert.fired_at.unwrap_or(alert.active_at)),
            ends_at: rfc3339(alert.resolved_at.unwrap_or(alert.valid_until)),
            generator_url,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Target {
    alertmanager: String,
}

#[derive(Clone, Default)]
struct Telemetry {
    sent: Family<Target, Counter>,
    failed: Family<Target, Counter>,
    dropped: Family<Target, Counter>,
    queue: Family<Target, Gauge>,
}

struct Queue {
    target: Target,
    url: String,
    alerts: Mutex<VecDeque<Posted>>,
    wake: Notify,
}

/// The Alertmanagers alerts go to.
pub struct Notifier {
    queues: Vec<Arc<Queue>>,
    capacity: usize,
    telemetry: Telemetry,
}

impl Notifier {
    /// Starts one sender task per URL (on the current runtime).
    pub fn start(urls: &[String], capacity: usize, timeout: Duration, cancel: CancellationToken) -> Notifier {
        let telemetry = Telemetry::default();
        let client = reqwest::Client::builder().timeout(timeout).build().unwrap_or_default();
        let queues: Vec<Arc<Queue>> = urls
            .iter()
            .map(|u| {
                Arc::new(Queue {
                    target: Target { alertmanager: u.clone() },
                    url: format!("{}/api/v2/alerts", u.trim_end_matches('/')),
                    alerts: Mutex::default(),
                    wake: Notify::new(),
                })
            })
            .collect();
        for q in &queues {
            tokio::spawn(send_loop(q.clone(), client.clone(), telemetry.clone(), cancel.clone()));
        }
        Notifier { queues, capacity: capacity.max(1), telemetry }
    }

    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("sightline_notifications");
        r.register("sent", "Alerts sent to an Alertmanager", self.telemetry.sent.clone());
        r.register(
            "failed",
            "Alerts whose sending to an Alertmanager failed (they are retried)",
            self.telemetry.failed.clone(),
        );
        r.register(
            "dropped",
            "Alerts dropped because the queue of an Alertmanager was full",
            self.telemetry.dropped.clone(),
        );
        r.register("queue_length", "Alerts waiting to be sent to an Alertmanager", self.telemetry.queue.clone());
    }

    /// Queues `alerts` for every Alertmanager.
    pub fn send(&self, alerts: &[Posted]) {
        if alerts.is_empty() {
            return;
        }
        for q in &self.queues {
            let mut queue = q.alerts.lock();
            queue.extend(alerts.iter().cloned());
            let over = queue.len().saturating_sub(self.capacity);
            if over > 0 {
                queue.drain(..over);
                self.telemetry.dropped.get_or_create(&q.target).inc_by(over as u64);
            }
            self.telemetry.queue.get_or_create(&q.target).set(queue.len() as i64);
            drop(queue);
            q.wake.notify_one();
        }
    }
}

async fn send_loop(q: Arc<Queue>, client: reqwest::Client, telemetry: Telemetry, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let batch: Vec<Posted> = {
            let queue = q.alerts.lock();
            queue.iter().take(MAX_BATCH).cloned().collect()
        };
        if batch.is_empty() {
            tokio::select! {
                _ = q.wake.notified() => continue,
                _ = cancel.cancelled() => return,
            }
        }
        let result = client.post(&q.url).json(&batch).send().await;
        let ok = match result {
            Ok(response) if response.status().is_success() => true,
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                tracing::warn!(alertmanager = %q.target.alertmanager, %status, body = %body.trim(), "Alertmanager refused alerts");
                false
            }
            Err(e) => {
                tracing::warn!(alertmanager = %q.target.alertmanager, error = %e, "cannot send alerts to Alertmanager");
                false
            }
        };
        if ok {
            backoff = Duration::from_millis(500);
            telemetry.sent.get_or_create(&q.target).inc_by(batch.len() as u64);
            let mut queue = q.alerts.lock();
            // The batch is still at the front unless a full queue dropped part of it.
            let mut sent = batch.iter();
            let mut first = sent.next();
            while let (Some(a), Some(front)) = (first, queue.front()) {
                if a != front {
                    break;
                }
                queue.pop_front();
                first = sent.next();
            }
            telemetry.queue.get_or_create(&q.target).set(queue.len() as i64);
        } else {
            telemetry.failed.get_or_create(&q.target).inc_by(batch.len() as u64);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = cancel.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}
