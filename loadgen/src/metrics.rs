//! Node-exporter-like series: per host, CPU seconds per core and mode and
//! network byte counters (cumulative sums), memory gauges; 100 series a
//! host, one point each per scrape round.

use sightline_proto::otlp::ExportMetricsServiceRequest;
use sightline_proto::otlp::common::KeyValue;
use sightline_proto::otlp::metrics::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
    number_data_point,
};
use sightline_proto::otlp::resource::Resource;

use crate::{Rng, text};

const MODES: [&str; 8] = ["user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice"];
const DEVICES: [&str; 4] = ["eth0", "eth1", "lo", "docker0"];
/// Series per host.
pub const SERIES_PER_HOST: usize = 100;

pub struct MetricGen {
    rng: Rng,
    hosts: usize,
    /// The current value of every series, host-major.
    values: Vec<f64>,
    start_unix_nano: u64,
}

impl MetricGen {
    pub fn new(seed: u64, hosts: usize, start_unix_nano: u64) -> Self {
        let values = (0..hosts).flat_map(|_| (0..SERIES_PER_HOST).map(|s| if s < 72 { 0.0 } else { 1e9 })).collect();
        MetricGen { rng: Rng::new(seed), hosts, values, start_unix_nano }
    }

    pub fn series(&self) -> usize {
        self.hosts * SERIES_PER_HOST
    }

    /// Advances every series one scrape and returns the round at `time_unix_nano`.
    pub fn round(&mut self, time_unix_nano: u64) -> ExportMetricsServiceRequest {
        let resource_metrics = (0..self.hosts).map(|h| self.host(h, time_unix_nano)).collect();
        ExportMetricsServiceRequest { resource_metrics }
    }

    fn next(&mut self, i: usize, counter: bool, scale: f64) -> f64 {
        let noise = (self.rng.next_u64() % 1000) as f64 / 1000.0;
        let prev = self.values[i];
        self.values[i] = if counter {
            ((prev + scale * 15.0 * (0.5 + noise)) * 100.0).round() / 100.0
        } else if noise < 0.6 {
            prev
        } else {
            (prev + (noise - 0.8) * scale / 1000.0).round()
        };
        self.values[i]
    }

    fn host(&mut self, h: usize, t: u64) -> ResourceMetrics {
        let base = h * SERIES_PER_HOST;
        let start = self.start_unix_nano;
        let point = |g: &mut Self, i: usize, counter: bool, scale: f64, attributes: Vec<KeyValue>| NumberDataPoint {
            attributes,
            start_time_unix_nano: if counter { start } else { 0 },
            time_unix_nano: t,
            value: Some(number_data_point::Value::AsDouble(g.next(base + i, counter, scale))),
            ..Default::default()
        };
        let mut cpu = Vec::with_capacity(64);
        for c in 0..8 {
            for (m, mode) in MODES.iter().enumerate() {
                let scale = if *mode == "idle" { 0.7 } else { 0.04 };
                cpu.push(point(self, c * 8 + m, true, scale, vec![text("cpu", c.to_string()), text("mode", *mode)]));
            }
        }
        let mut net = [Vec::new(), Vec::new()];
        for (d, device) in DEVICES.iter().enumerate() {
            for (k, points) in net.iter_mut().enumerate() {
                points.push(point(self, 64 + d * 2 + k, true, 50_000.0, vec![text("device", *device)]));
            }
        }
        let memory: Vec<_> = (72..SERIES_PER_HOST)
            .map(|i| point(self, i, false, 1e9, vec![text("kind", format!("k{}", i - 72))]))
            .collect();
        let [receive, transmit] = net;
        let sum = |name: &str, data_points| Metric {
            name: name.into(),
            data: Some(metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let metrics = vec![
            sum("node_cpu_seconds_total", cpu),
            sum("node_network_receive_bytes_total", receive),
            sum("node_network_transmit_bytes_total", transmit),
            Metric {
                name: "node_memory_bytes".into(),
                data: Some(metric::Data::Gauge(Gauge { data_points: memory })),
                ..Default::default()
            },
        ];
        ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "node"),
                    text("service.instance.id", format!("host-{h:03}:9100")),
                    text("host.name", format!("host-{h:03}")),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
            schema_url: String::new(),
        }
    }
}

/// Points in a request.
pub fn points(req: &ExportMetricsServiceRequest) -> usize {
    req.resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Histogram(h)) => h.data_points.len(),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hundred_series_per_host_with_rising_counters() {
        let mut g = MetricGen::new(1, 3, 1_000);
        let first = g.round(15_000_000_000);
        let second = g.round(30_000_000_000);
        assert_eq!(points(&first), 300);
        assert_eq!(points(&second), 300);
        let cpu = |r: &ExportMetricsServiceRequest| match &r.resource_metrics[0].scope_metrics[0].metrics[0].data {
            Some(metric::Data::Sum(s)) => match s.data_points[0].value {
                Some(number_data_point::Value::AsDouble(v)) => v,
                _ => f64::NAN,
            },
            _ => f64::NAN,
        };
        assert!(cpu(&second) > cpu(&first));
    }
}
