//! Bad input, table-driven, over OTLP/HTTP and OTLP/gRPC: each case gets its
//! defined answer, nothing panics, and only valid items are stored.

use sightline_testkit as common;

use std::io::Write;

use common::otlp::{request_of, span, trace_id};
use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;
use sightline_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use sightline_proto::otlp::common::{AnyValue, ArrayValue, KeyValue, any_value};
use sightline_proto::otlp::trace::Span;
use sightline_proto::otlp::{ExportTraceServiceRequest, ExportTraceServiceResponse};

const LIMIT: usize = 64 * 1024;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn good(n: u64) -> Span {
    span(&trace_id(n), 0)
}

fn proto(spans: Vec<Span>) -> Vec<u8> {
    request_of(spans).encode_to_vec()
}

fn nested(depth: usize) -> AnyValue {
    let mut v = AnyValue { value: Some(any_value::Value::IntValue(1)) };
    for _ in 0..depth {
        v = AnyValue { value: Some(any_value::Value::ArrayValue(ArrayValue { values: vec![v] })) };
    }
    v
}

/// Replaces the bytes of `needle` in an encoded message (same length).
fn patch(mut body: Vec<u8>, needle: &[u8], with: &[u8]) -> Vec<u8> {
    let at = body.windows(needle.len()).position(|w| w == needle).expect("needle present");
    body[at..at + with.len()].copy_from_slice(with);
    body
}

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    /// For 200: the number of rejected items in the partial success.
    rejected: i64,
}

fn case(name: &'static str, content_type: &'static str, body: Vec<u8>, status: u16, rejected: i64) -> Case {
    Case { name, path: "/v1/traces", content_type, headers: Vec::new(), body, status, rejected }
}

const PB: &str = "application/x-protobuf";
const JSON: &str = "application/json";

fn cases() -> Vec<Case> {
    let mut bad_trace = good(2);
    bad_trace.trace_id.truncate(15);
    let mut zero_span = good(3);
    zero_span.span_id = vec![0; 8];
    let mut backwards = good(4);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    let mut absurd = good(5);
    absurd.start_time_unix_nano = u64::MAX - 1;
    absurd.end_time_unix_nano = u64::MAX;
    let mut deep = good(6);
    deep.attributes = vec![KeyValue { key: "deep".into(), value: Some(nested(20)), key_strindex: 0 }];
    let mut bad_parent = good(7);
    bad_parent.parent_span_id = vec![1, 2, 3];
    let mut bad_utf8 = good(8);
    bad_utf8.name = "XXXX".into();
    let bomb = gzip(&proto(vec![Span { name: "a".repeat(50 << 20), ..good(9) }]));
    assert!(bomb.len() < LIMIT, "the bomb itself is small");

    let mut deep_json = String::from(r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":"#);
    deep_json.push_str(&r#"{"arrayValue":{"values":["#.repeat(200));
    let mut c = vec![
        case("malformed protobuf", PB, vec![0x0a, 0xff, 0xff, 0xff, 0x0f], 400, 0),
        case("malformed JSON", JSON, br#"{"resourceSpans": ["#.to_vec(), 400, 0),
        case("JSON of the wrong type", JSON, br#"{"resourceSpans": 5}"#.to_vec(), 400, 0),
        case("JSON with a non-hex trace id", JSON, br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#.to_vec(), 400, 0),
        case("JSON nested 200 deep", JSON, deep_json.into_bytes(), 400, 0),
        case("unsupported content type", "text/plain", b"hello".to_vec(), 415, 0),
        case("body over the limit", PB, vec![0; LIMIT + 1], 413, 0),
        case("invalid UTF-8 in a string", PB, patch(proto(vec![bad_utf8]), b"XXXX", &[0xff, 0xfe, 0xfd, 0xfc]), 400, 0),
        case("empty request", PB, Vec::new(), 200, 0),
        case("trace id of 15 bytes", PB, proto(vec![bad_trace, good(10)]), 200, 1),
        case("all-zero span id", PB, proto(vec![zero_span, good(11)]), 200, 1),
        case("span ending before it starts", PB, proto(vec![backwards, good(12)]), 200, 1),
        case("absurd timestamp", PB, proto(vec![absurd, good(13)]), 200, 1),
        case("attributes nested too deep", PB, proto(vec![deep, good(14)]), 200, 1),
        case("parent span id of 3 bytes", PB, proto(vec![bad_parent, good(15)]), 200, 1),
        case(
            "JSON: zero trace id and a good span",
            JSON,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
              {"traceId":"00000000000000000000000000000000","spanId":"0102030405060708","startTimeUnixNano":"1","endTimeUnixNano":"2"},
              {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#
                .to_vec(),
            200,
            1,
        ),
        case("log with a 4-byte span id", JSON, br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"spanId":"01020304","body":{"stringValue":"x"}},{"body":{"stringValue":"ok"}}]}]}]}"#.to_vec(), 200, 1),
        case(
            "histogram with mismatched buckets, NaN gauge accepted",
            JSON,
            br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
              {"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":"5","count":"1","bucketCounts":["1"],"explicitBounds":[1,2]}]}},
              {"name":"g","gauge":{"dataPoints":[{"timeUnixNano":"5","asDouble":"NaN"}]}},
              {"name":"g","gauge":{"dataPoints":[{"asDouble":1}]}}]}]}]}"#
                .to_vec(),
            200,
            2,
        ),
    ];
    c[16].path = "/v1/logs";
    c[17].path = "/v1/metrics";
    c.push(Case {
        headers: vec![("content-encoding", "br")],
        ..case("unsupported content encoding", PB, proto(vec![good(20)]), 415, 0)
    });
    c.push(Case { headers: vec![("content-encoding", "gzip")], ..case("gzip bomb", PB, bomb, 413, 0) });
    c.push(Case {
        headers: vec![("content-encoding", "gzip")],
        ..case("corrupt gzip", PB, b"\x1f\x8bnot gzip".to_vec(), 400, 0)
    });
    c.push(Case {
        headers: vec![("X-Scope-OrgID", "no/slashes")],
        ..case("invalid tenant", PB, proto(vec![good(21)]), 400, 0)
    });
    c.push(Case {
        headers: vec![("content-encoding", "gzip")],
        ..case("gzip good request", PB, gzip(&proto(vec![good(22)])), 200, 0)
    });
    c
}

fn rejected_of(content_type: &str, path: &str, body: &[u8]) -> i64 {
    if content_type == PB {
        assert_eq!(path, "/v1/traces");
        return ExportTraceServiceResponse::decode(body)
            .expect("response")
            .partial_success
            .map_or(0, |p| p.rejected_spans);
    }
    let v: serde_json::Value = serde_json::from_slice(body).expect("JSON response");
    let key = match path {
        "/v1/traces" => "rejectedSpans",
        "/v1/logs" => "rejectedLogRecords",
        _ => "rejectedDataPoints",
    };
    v["partialSuccess"][key].as_str().map_or(0, |n| n.parse().expect("int64 as string"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_bad_input_table() {
    let s = common::start(|c| {
        c.ingest.max_body_bytes = LIMIT;
        c.spanmetrics.enabled = false; // count only the samples sent
    })
    .await;
    let client = reqwest::Client::new();
    let mut expected_spans = 0;
    for c in cases() {
        let mut req =
            client.post(format!("http://{}{}", s.server.http_addr, c.path)).header("content-type", c.content_type);
        for (k, v) in &c.headers {
            req = req.header(*k, *v);
        }
        let r = req.body(c.body.clone()).send().await.unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let status = r.status().as_u16();
        let body = r.bytes().await.expect("body");
        assert_eq!(status, c.status, "{}: {}", c.name, String::from_utf8_lossy(&body));
        if status == 200 {
            assert_eq!(rejected_of(c.content_type, c.path, &body), c.rejected, "{}", c.name);
            if c.path == "/v1/traces" && c.name != "empty request" {
                expected_spans += 1;
            }
        } else {
            // Errors carry a google.rpc.Status with a message, in the request's format.
            let message = if c.content_type == PB {
                tonic_types::Status::decode(body.as_ref()).expect("Status").message
            } else {
                serde_json::from_slice::<serde_json::Value>(&body).expect("JSON")["message"]
                    .as_str()
                    .expect("message")
                    .to_owned()
            };
            assert!(!message.is_empty(), "{}", c.name);
        }
    }
    // Nothing bad was stored, everything good was (acknowledged = readable).
    let default = common::tenant("default");
    let spans = s.server.spans.counts(&default);
    assert_eq!(spans.head_spans + spans.part_spans, expected_spans);
    s.server.logs.commit_blocking().expect("commit");
    assert_eq!(s.server.logs.count(&default).expect("count"), 1);
    // The one valid point, and its resource's target_info sample.
    assert_eq!(s.server.metrics.sample_count(&default), 2);
    s.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_chunked_body_is_accepted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = common::start(|_| {}).await;
    let body = proto(vec![good(1)]);
    let (a, b) = body.split_at(body.len() / 2);
    let mut request = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: {PB}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in [a, b] {
        request.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend(chunk);
        request.extend(b"\r\n");
    }
    request.extend(b"0\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(s.server.http_addr).await.expect("connect");
    stream.write_all(&request).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    assert!(response.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&response));
    s.server.shutdown().await.expect("shutdown");
}

/// Headers past the 16 KiB a connection reads ahead are refused with 431;
/// a kept-alive connection that carried a body many times that size
/// answers its next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_headers_over_16_kib_are_refused_and_large_bodies_are_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = common::start(|_| {}).await;
    let client = reqwest::Client::new();
    let huge = "x".repeat(20 * 1024);
    let r = client.get(s.api_url("/ready")).header("x-padding", huge).send().await.expect("response");
    assert_eq!(r.status().as_u16(), 431);

    // 300 spans with long attributes: a body of some 200 KiB.
    let padding = KeyValue {
        key: "padding".into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue("p".repeat(600))) }),
        key_strindex: 0,
    };
    let spans: Vec<_> = (0..300)
        .map(|i| {
            let mut span = good(i);
            span.attributes.push(padding.clone());
            span
        })
        .collect();
    let body = proto(spans);
    assert!(body.len() > 160 * 1024, "{} bytes", body.len());
    let mut stream = tokio::net::TcpStream::connect(s.server.http_addr).await.expect("connect");
    for close in ["keep-alive", "close"] {
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: {PB}\r\ncontent-length: {}\r\nconnection: {close}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(&body).await.expect("write");
        let mut response = vec![0; 4096];
        let n = stream.read(&mut response).await.expect("read");
        assert!(response[..n].starts_with(b"HTTP/1.1 200"), "{close}: {}", String::from_utf8_lossy(&response[..n]));
    }
    s.server.shutdown().await.expect("shutdown");
}

/// Sends bytes as they are to the gRPC trace service.
#[derive(Clone, Debug, Default, PartialEq)]
struct Raw(Vec<u8>);

impl Message for Raw {
    fn encode_raw(&self, buf: &mut impl bytes::BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

async fn raw_grpc(url: &str, body: Vec<u8>) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let channel =
        tonic::transport::Endpoint::from_shared(url.to_owned()).expect("url").connect().await.expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    grpc.unary(
        tonic::Request::new(Raw(body)),
        path,
        tonic_prost::ProstCodec::<Raw, ExportTraceServiceResponse>::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_bad_input_table() {
    let s = common::start(|c| c.ingest.max_body_bytes = LIMIT).await;
    let url = s.grpc_url();
    let mut client = TraceServiceClient::connect(url.clone()).await.expect("connect");

    // Invalid items: partial success, the rest stored.
    let mut bad = good(1);
    bad.trace_id = vec![1; 3];
    let mut deep = good(2);
    deep.attributes = vec![KeyValue { key: "deep".into(), value: Some(nested(20)), key_strindex: 0 }];
    let r = client.export(request_of(vec![bad, deep, good(3)])).await.expect("accepted").into_inner();
    let partial = r.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(partial.error_message.contains("trace id must be 16 bytes"), "{}", partial.error_message);

    // Undecodable bytes and invalid UTF-8: INVALID_ARGUMENT.
    let status = raw_grpc(&url, vec![0x0a, 0xff, 0xff, 0xff, 0x0f]).await.expect_err("malformed");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let mut utf8 = good(4);
    utf8.name = "XXXX".into();
    let status =
        raw_grpc(&url, patch(proto(vec![utf8]), b"XXXX", &[0xff, 0xfe, 0xfd, 0xfc])).await.expect_err("bad UTF-8");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // Over the size limit, plain or as a gzip bomb: RESOURCE_EXHAUSTED without retry info.
    let big = ExportTraceServiceRequest {
        resource_spans: request_of(vec![Span { name: "a".repeat(LIMIT), ..good(5) }]).resource_spans,
    };
    let status = client.export(big.clone()).await.expect_err("too large");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let bomb = ExportTraceServiceRequest {
        resource_spans: request_of(vec![Span { name: "a".repeat(50 << 20), ..good(6) }]).resource_spans,
    };
    let mut gz = TraceServiceClient::connect(url.clone())
        .await
        .expect("connect")
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_encoding_message_size(usize::MAX);
    let status = gz.export(bomb).await.expect_err("bomb");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    use tonic_types::StatusExt;
    assert!(status.get_details_retry_info().is_none(), "not retryable");

    // Invalid tenant metadata.
    let mut req = tonic::Request::new(request_of(vec![good(7)]));
    req.metadata_mut().insert("x-scope-orgid", "a b".parse().expect("metadata"));
    assert_eq!(client.export(req).await.expect_err("tenant").code(), tonic::Code::InvalidArgument);

    // The server is unharmed and stored only the valid span.
    client.export(request_of(vec![good(8)])).await.expect("still serving");
    let counts = s.server.spans.counts(&common::tenant("default"));
    assert_eq!(counts.head_spans + counts.part_spans, 2);
    s.server.shutdown().await.expect("shutdown");
}
