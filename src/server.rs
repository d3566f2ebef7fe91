//! Assembles the parts into a running server: WAL → pipeline → stores, the
//! OTLP receivers, and the API port. Used by `main` and by the end-to-end
//! tests, which start it on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::http::HeaderName;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sightline_collector::receivers::syslog::Syslog;
use sightline_collector::receivers::{elasticsearch, loki, otlp_grpc, otlp_http, remote_write, zipkin};
use sightline_collector::signal::RemoteWrite;
use sightline_collector::spanmetrics::DerivedMetrics;
use sightline_collector::{Pipeline, Sinks};
use sightline_proto::prometheus::{Label, Sample as WireSample, TimeSeries, WriteRequest};
use sightline_query::QueryState;
use sightline_query::dashboards::DashboardStore;
use sightline_query::http::ops::{self, OpsState};
use sightline_rules::{Appender, BoxFuture, Rules};
use sightline_storage::logs::LogStore;
use sightline_storage::metrics::{MetricStore, Sample};
use sightline_storage::model::Tenant;
use sightline_storage::objects::{self, CacheTelemetry, ObjectStoreTelemetry};
use sightline_storage::spans::SpanStore;
use sightline_storage::wal::{Wal, WalConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::metadata::AsciiMetadataKey;

use crate::auth::grpc::Interceptor;
use crate::auth::http::{Guard, guarded};
use crate::auth::{Auth, keys};
use crate::config::Config;
use crate::serve::{self, listen};
use crate::tls::Tls;

/// A running Sightline: its bound addresses and what it holds.
pub struct Server {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub zipkin_addr: SocketAddr,
    /// TCP and UDP, when `listen.syslog` is set.
    pub syslog_addr: Option<SocketAddr>,
    pub metrics: MetricStore,
    pub spans: SpanStore,
    pub logs: LogStore,
    /// The rule engine (reload it with [`Rules::reload`]).
    pub rules: Rules,
    spanmetrics: Arc<DerivedMetrics>,
    /// Records replayed from the WAL at start.
    pub replayed: u64,
    pipeline: Arc<Pipeline>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Server {
    /// Opens the WAL, starts the API port, replays the WAL into the stores,
    /// then opens the OTLP ports. Returns once all of them listen.
    pub async fn start(config: &Config) -> anyhow::Result<Server> {
        let mut registry = Registry::default();
        let wal_config = WalConfig {
            dir: config.data_dir.join("wal"),
            segment_bytes: config.wal.segment_bytes,
            fsync: config.wal.policy(),
            queue_capacity: config.wal.queue_capacity,
        };
        let (wal, replay) = Wal::open(wal_config, &mut registry).context("cannot open the write-ahead log")?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let where_ = config.storage.describe(&config.data_dir);
        let (object_telemetry, cache_telemetry) = (ObjectStoreTelemetry::default(), CacheTelemetry::default());
        object_telemetry.register(&mut registry);
        cache_telemetry.register(&mut registry);
        let objects = objects::open(&config.storage, &config.data_dir, &object_telemetry, &cache_telemetry)
            .with_context(|| format!("cannot open the object store {where_}"))?;
        tracing::info!(objects = %where_, "span parts and metric blocks are kept in the object store");
        let spans = SpanStore::open(objects.clone(), config.spans.store_config(), Some(wal.clone()))
            .await
            .context("cannot open the span store")?;
        spans.register_telemetry(&mut registry);
        let logs = LogStore::open(config.logs.store_config(&config.data_dir), Some(wal.clone()))
            .context("cannot open the log store")?;
        logs.register_telemetry(&mut registry);
        let metrics = MetricStore::open(objects.clone(), config.metrics.store_config(), Some(wal.clone()))
            .await
            .context("cannot open the metric store")?;
        metrics.register_telemetry(&mut registry);
        let spanmetrics = Arc::new(
            DerivedMetrics::start(spans.shard_sinks(), metrics.clone(), config.spanmetrics.clone())
                .context("cannot start the span metrics connector")?,
        );
        spanmetrics.register_telemetry(&mut registry);
        let sinks =
            Sinks { spans: spanmetrics.sinks(), logs: Arc::new(logs.clone()), metrics: Arc::new(metrics.clone()) };
        let pipeline = Pipeline::start(config.ingest.clone(), wal, sinks, &mut registry)?;
        let cancel = CancellationToken::new();
        let default_tenant = Tenant::new(&config.ingest.default_tenant)?;
        let rules = Rules::load(
            sightline_rules::Setup {
                rules: config.rules.clone(),
                alerting: config.alerting.clone(),
                external_url: external_url(config),
                store: metrics.clone(),
                logs: logs.clone(),
                limits: config.query.clone(),
                appender: Arc::new(ThroughPipeline(pipeline.clone())),
                default_tenant: default_tenant.clone(),
            },
            cancel.clone(),
        )
        .context("cannot load the rule files")?;
        rules.register_telemetry(&mut registry);
        let syslog = match config.listen.syslog {
            Some(_) => Some(Syslog::new(pipeline.clone(), &config.syslog, &mut registry).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let rss = Gauge::<i64>::default();
        registry.register("sightline_process_resident_memory_bytes", "Resident set size of the process", rss.clone());
        let registry = Arc::new(registry);

        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(watch_rss(rss, pipeline.clone(), cancel.clone())));

        let ready = Arc::new(AtomicBool::new(false));
        let api = listen(config.listen.api)?;
        let api_addr = api.local_addr()?;
        let query = QueryState {
            spans: spans.clone(),
            logs: logs.clone(),
            metrics: metrics.clone(),
            tenant_header: config.ingest.tenant_header.clone(),
            default_tenant: default_tenant.clone(),
            max_spans_per_trace: config.spans.max_spans_per_trace,
            dashboards: DashboardStore::new(objects.clone()),
            limits: config.query.clone(),
            running: Default::default(),
        };
        let auth = Auth::from_config(&config.auth)?;
        if let (Some(auth), Some(path)) = (&auth, &config.auth.keys_file) {
            tracing::info!(keys = auth.key_count(), "authentication is on");
            tasks.push(tokio::spawn(keys::watch(auth.clone(), path.clone(), Duration::from_secs(1), cancel.clone())));
        } else if let Some(auth) = &auth {
            tracing::info!(keys = auth.key_count(), "authentication is on");
        }
        let tenant_header = HeaderName::from_bytes(config.ingest.tenant_header.to_ascii_lowercase().as_bytes())?;
        let guard = Guard {
            auth: auth.clone(),
            tenant_header: tenant_header.clone(),
            default_tenant: default_tenant.clone(),
            metrics: config.auth.metrics,
        };
        // The query APIs, each behind the per-tenant concurrency limit and the deadline.
        let app = sightline_query::router(query)
            .merge(remote_write::router(pipeline.clone()))
            .merge(loki::router(pipeline.clone()))
            .merge(elasticsearch::router(pipeline.clone()))
            .merge(sightline_rules::api::router(sightline_rules::api::ApiState {
                rules: rules.clone(),
                tenant_header: config.ingest.tenant_header.clone(),
                default_tenant: default_tenant.clone(),
            }))
            .merge(sightline_ui::router())
            .merge(ops::router(OpsState {
                registry,
                ready: ready.clone(),
                metrics: metrics.clone(),
                tenant: Tenant::new(&config.ingest.default_tenant)?,
            }));
        let app = guarded(app, guard.clone());
        let tls = Tls::from_config(&config.tls).context("cannot set up TLS")?;
        if let Some(tls) = &tls {
            tasks.push(tokio::spawn(tls.clone().watch(Duration::from_secs(1), cancel.clone())));
        }
        tasks.push(serve_http(api, tls.as_ref(), app, cancel.clone()));

        let replaying = pipeline.clone();
        let replayed = tokio::task::spawn_blocking(move || replaying.replay_blocking(replay))
            .await
            .context("WAL replay stopped")?
            .context("cannot replay the write-ahead log")?;
        if replayed > 0 {
            tracing::info!(records = replayed, "replayed the write-ahead log");
        }
        // Only now may windows be cut: every acknowledged sample is back in the head.
        metrics.replay_done();
        // Spans from now on are new: the replayed ones were counted before the restart.
        spanmetrics.replay_done();
        // Rules read what was replayed (and restore alerts' `for` state from it).
        rules.begin();

        let http = listen(config.listen.http)?;
        let http_addr = http.local_addr()?;
        let app = guarded(otlp_http::router(pipeline.clone()), guard.clone());
        tasks.push(serve_http(http, tls.as_ref(), app, cancel.clone()));

        let zipkin_listener = listen(config.listen.zipkin)?;
        let zipkin_addr = zipkin_listener.local_addr()?;
        let app = guarded(zipkin::router(pipeline.clone()), guard);
        tasks.push(serve_http(zipkin_listener, tls.as_ref(), app, cancel.clone()));

        let syslog_addr = match (syslog, config.listen.syslog) {
            (Some(syslog), Some(addr)) => {
                let tcp = listen(addr)?;
                let bound = tcp.local_addr()?;
                // UDP on the port TCP got (the same when it was given).
                let udp = tokio::net::UdpSocket::bind(bound)
                    .await
                    .with_context(|| format!("cannot listen on {bound} (UDP)"))?;
                // TCP speaks TLS like every other listener (RFC 5425); UDP cannot.
                tasks.push(match &tls {
                    Some(tls) => {
                        tokio::spawn(syslog.clone().serve_tcp(tls.incoming(tcp, cancel.clone()), cancel.clone()))
                    }
                    None => tokio::spawn(syslog.clone().serve_tcp(tcp, cancel.clone())),
                });
                tasks.push(tokio::spawn(syslog.serve_udp(udp, cancel.clone())));
                Some(bound)
            }
            _ => None,
        };

        let grpc = listen(config.listen.grpc)?;
        let grpc_addr = grpc.local_addr()?;
        let (grpc_pipeline, stop) = (pipeline.clone(), cancel.clone());
        let interceptor = Interceptor {
            pipeline: pipeline.clone(),
            auth,
            tenant_key: AsciiMetadataKey::from_bytes(tenant_header.as_str().as_bytes())?,
        };
        tasks.push(tokio::spawn(async move {
            let served = match tls {
                Some(tls) => {
                    let incoming = tls.incoming(grpc, stop.clone()).into_stream();
                    otlp_grpc::serve(grpc_pipeline, incoming, interceptor, stop.cancelled_owned()).await
                }
                None => {
                    let incoming = tonic::transport::server::TcpIncoming::from(grpc);
                    otlp_grpc::serve(grpc_pipeline, incoming, interceptor, stop.cancelled_owned()).await
                }
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "OTLP/gRPC server failed");
            }
        }));
        ready.store(true, Ordering::Release);
        Ok(Server {
            grpc_addr,
            http_addr,
            api_addr,
            zipkin_addr,
            syslog_addr,
            metrics,
            spans,
            logs,
            rules,
            spanmetrics,
            replayed,
            pipeline,
            cancel,
            tasks,
        })
    }

    /// Stops accepting, finishes in-flight requests, writes the WAL, and
    /// lets the stores take everything queued.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        let (pipeline, spanmetrics, spans, logs, metrics) =
            (self.pipeline, self.spanmetrics, self.spans, self.logs, self.metrics);
        tokio::task::spawn_blocking(move || {
            pipeline.shutdown_blocking();
            spanmetrics.shutdown_blocking();
            spans.shutdown_blocking();
            logs.shutdown_blocking();
            metrics.shutdown_blocking();
        })
        .await?;
        Ok(())
    }
}

/// How the UI is reached, for alerts' links: the configured URL, or the
/// API's listen address.
fn external_url(config: &Config) -> String {
    if !config.alerting.external_url.is_empty() {
        return config.alerting.external_url.clone();
    }
    let scheme = if config.tls.cert_file.is_some() { "https" } else { "http" };
    let addr = config.listen.api;
    let host = if addr.ip().is_unspecified() { "localhost".to_owned() } else { addr.ip().to_string() };
    format!("{scheme}://{host}:{}", addr.port())
}

/// Rule output written like remote write: through the WAL into the metric
/// store, acknowledged once stored.
struct ThroughPipeline(Arc<Pipeline>);

impl Appender for ThroughPipeline {
    fn append(&self, tenant: &Tenant, samples: Vec<Sample>) -> BoxFuture<Result<(), String>> {
        let (pipeline, tenant) = (self.0.clone(), tenant.clone());
        Box::pin(async move {
            let timeseries = samples
                .into_iter()
                .map(|s| TimeSeries {
                    labels: s.labels.iter().map(|(k, v)| Label { name: k.to_owned(), value: v.to_owned() }).collect(),
                    samples: vec![WireSample { value: s.v, timestamp: s.t }],
                    exemplars: Vec::new(),
                })
                .collect();
            let request = WriteRequest { timeseries, metadata: Vec::new() };
            match pipeline.submit::<RemoteWrite>(&tenant, request, None).await {
                Ok(outcome) if outcome.rejected == 0 => Ok(()),
                Ok(outcome) => Err(outcome.message),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// Serves `app` on `listener`, over TLS when it is configured, until `cancel`.
fn serve_http(
    listener: TcpListener,
    tls: Option<&Tls>,
    app: axum::Router,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    match tls {
        Some(t) => tokio::spawn(serve::serve(t.incoming(listener, cancel.clone()), app, cancel)),
        None => tokio::spawn(serve::serve(listener, app, cancel)),
    }
}

/// Keeps the resident-memory gauge and the pipeline's reading current,
/// ten times a second (reading `/proc/self/statm` is cheap).
async fn watch_rss(gauge: Gauge<i64>, pipeline: Arc<Pipeline>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut over = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {
                if let Some(rss) = resident_bytes() {
                    gauge.set(rss as i64);
                    pipeline.resident().set(rss);
                    let now_over = pipeline.resident().check().is_err();
                    if now_over != over {
                        over = now_over;
                        let limit = pipeline.resident().limit() >> 20;
                        if over {
                            tracing::warn!(resident_mib = rss >> 20, limit_mib = limit, "memory near its limit: refusing ingest until it falls");
                        } else {
                            tracing::info!(resident_mib = rss >> 20, limit_mib = limit, "memory back under its limit: ingest admitted again");
                        }
                    }
                }
            }
        }
    }
}

/// Resident set size from `/proc/self/statm` (Linux); `None` elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
