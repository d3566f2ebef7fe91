//! Overload: a tenant over its rate gets retryable refusals with the right
//! codes and hints on both transports; other tenants are untouched; every
//! accepted span arrives.

use sightline_testkit as common;

use common::otlp::traces_request;
use common::tenant;
use prost::Message;
use sightline_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use tonic_types::StatusExt;

const SPANS: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_over_its_rate_is_refused_retryably_and_others_are_not() {
    let s = common::start_rate_limited(10, 200).await;
    let client = reqwest::Client::new();
    let post = |n: u64, tenant: &'static str| {
        client
            .post(s.otlp_http_url("traces"))
            .header("content-type", "application/x-protobuf")
            .header("X-Scope-OrgID", tenant)
            .body(traces_request(n, SPANS).encode_to_vec())
            .send()
    };

    // The burst admits four requests of 50 spans; then the tenant is refused.
    let (mut accepted, mut refused) = (0u64, 0u64);
    for n in 0..20 {
        let r = post(n, "noisy").await.expect("response");
        match r.status().as_u16() {
            200 => accepted += 1,
            429 => {
                refused += 1;
                let after: u64 = r.headers()["retry-after"].to_str().expect("text").parse().expect("seconds");
                assert!(after >= 1, "Retry-After {after}");
                let status =
                    tonic_types::Status::decode(r.bytes().await.expect("body")).expect("google.rpc.Status body");
                assert_eq!(status.code, tonic::Code::ResourceExhausted as i32);
                assert!(status.message.contains("rate limit"), "{}", status.message);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(accepted, 4, "the burst of 200 spans");
    assert_eq!(refused, 16);

    // The same tenant over gRPC: RESOURCE_EXHAUSTED with RetryInfo, as OTLP
    // requires for the refusal to be retryable.
    let mut grpc = TraceServiceClient::connect(s.grpc_url()).await.expect("connect");
    let mut request = tonic::Request::new(traces_request(100, SPANS));
    request.metadata_mut().insert("x-scope-orgid", "noisy".parse().expect("metadata"));
    let status = grpc.export(request).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let retry = status.get_details_retry_info().expect("RetryInfo detail");
    assert!(retry.retry_delay.is_some_and(|d| d.as_secs() >= 1));

    // Another tenant has its own bucket.
    assert_eq!(post(1000, "quiet").await.expect("response").status(), 200);

    // Every accepted span arrived; none of the refused ones did.
    let counts = s.server.spans.counts(&tenant("noisy"));
    assert_eq!(counts.head_spans + counts.part_spans, 4 * SPANS);

    // The refusals are counted in the self-metrics.
    let metrics = client.get(s.api_url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let refused_line = metrics
        .lines()
        .find(|l| {
            l.starts_with("sightline_ingest_refused_items_total")
                && l.contains("tenant=\"noisy\"")
                && l.contains("rate_limited")
        })
        .expect("refusal counter");
    assert!(refused_line.ends_with(&format!(" {}", 17 * SPANS)), "{refused_line}");
    s.server.shutdown().await.expect("shutdown");
}
