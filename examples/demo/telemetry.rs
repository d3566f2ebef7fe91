//! One set of OpenTelemetry SDK providers per service of the shop, each with
//! its own resource, all exporting to Sightline over OTLP/gRPC.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Compression, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider};

/// Where and as whom the demo sends.
pub struct Target {
    pub endpoint: String,
    pub tenant: Option<String>,
}

/// A service's providers and the handles its code uses.
pub struct Telemetry {
    pub tracer: SdkTracer,
    pub logger: SdkLogger,
    pub meter: opentelemetry::metrics::Meter,
    tracer_provider: SdkTracerProvider,
    logger_provider: SdkLoggerProvider,
    meter_provider: SdkMeterProvider,
}

impl Telemetry {
    pub fn new(target: &Target, service: &str, instance: u32) -> anyhow::Result<Self> {
        let resource = Resource::builder()
            .with_service_name(service.to_owned())
            .with_attributes([
                KeyValue::new("service.version", "1.4.2"),
                KeyValue::new("service.namespace", "shop"),
                KeyValue::new("service.instance.id", format!("{service}-{instance}")),
                KeyValue::new("host.name", format!("node-{}", instance % 3 + 1)),
                KeyValue::new("deployment.environment.name", "demo"),
            ])
            .build();
        let mut metadata = tonic::metadata::MetadataMap::new();
        if let Some(tenant) = &target.tenant {
            metadata.insert("x-scope-orgid", tenant.parse()?);
        }
        macro_rules! exporter {
            ($builder:expr) => {
                $builder
                    .with_tonic()
                    .with_endpoint(&target.endpoint)
                    .with_metadata(metadata.clone())
                    .with_compression(Compression::Gzip)
                    .build()?
            };
        }
        let spans = exporter!(opentelemetry_otlp::SpanExporter::builder());
        let logs = exporter!(opentelemetry_otlp::LogExporter::builder());
        let metrics = exporter!(opentelemetry_otlp::MetricExporter::builder());
        // Short intervals so that a fresh demo shows up within seconds.
        let batch = BatchConfigBuilder::default().with_scheduled_delay(Duration::from_secs(1)).build();
        let tracer_provider = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_span_processor(BatchSpanProcessor::builder(spans).with_batch_config(batch).build())
            .build();
        let logger_provider =
            SdkLoggerProvider::builder().with_resource(resource.clone()).with_batch_exporter(logs).build();
        let reader = PeriodicReader::builder(metrics).with_interval(Duration::from_secs(5)).build();
        let meter_provider = SdkMeterProvider::builder().with_resource(resource).with_reader(reader).build();
        Ok(Self {
            tracer: tracer_provider.tracer("shop"),
            logger: logger_provider.logger("shop"),
            meter: meter_provider.meter("shop"),
            tracer_provider,
            logger_provider,
            meter_provider,
        })
    }

    /// Flushes what is buffered and stops the exporters.
    pub fn shutdown(&self) {
        let _ = self.tracer_provider.force_flush();
        let _ = self.logger_provider.force_flush();
        let _ = self.meter_provider.force_flush();
        let _ = self.tracer_provider.shutdown();
        let _ = self.logger_provider.shutdown();
        let _ = self.meter_provider.shutdown();
    }
}
