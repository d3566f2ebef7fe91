//! `ExportTraceServiceRequest` in OTLP/JSON.

use serde_json::Value;

use super::common::{attributes, resource, scope};
use super::reader::{Obj, Result};
use crate::otlp::ExportTraceServiceRequest;
use crate::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status, span};

const SPAN_KINDS: &[(&str, i32)] = &[
    ("SPAN_KIND_UNSPECIFIED", 0),
    ("SPAN_KIND_INTERNAL", 1),
    ("SPAN_KIND_SERVER", 2),
    ("SPAN_KIND_CLIENT", 3),
    ("SPAN_KIND_PRODUCER", 4),
    ("SPAN_KIND_CONSUMER", 5),
];

const STATUS_CODES: &[(&str, i32)] = &[("STATUS_CODE_UNSET", 0), ("STATUS_CODE_OK", 1), ("STATUS_CODE_ERROR", 2)];

pub(crate) fn request(v: &Value) -> Result<ExportTraceServiceRequest> {
    let o = Obj::new(v, "$")?;
    Ok(ExportTraceServiceRequest { resource_spans: o.messages("resourceSpans", "resource_spans", resource_spans)? })
}

fn resource_spans(o: Obj<'_>) -> Result<ResourceSpans> {
    Ok(ResourceSpans {
        resource: o.message("resource", "resource", resource)?,
        scope_spans: o.messages("scopeSpans", "scope_spans", scope_spans)?,
        schema_url: o.string("schemaUrl", "schema_url")?,
    })
}

fn scope_spans(o: Obj<'_>) -> Result<ScopeSpans> {
    Ok(ScopeSpans {
        scope: o.message("scope", "scope", scope)?,
        spans: o.messages("spans", "spans", span)?,
        schema_url: o.string("schemaUrl", "schema_url")?,
    })
}

fn span(o: Obj<'_>) -> Result<Span> {
    Ok(Span {
        trace_id: o.hex_bytes("traceId", "trace_id")?,
        span_id: o.hex_bytes("spanId", "span_id")?,
        trace_state: o.string("traceState", "trace_state")?,
        parent_span_id: o.hex_bytes("parentSpanId", "parent_span_id")?,
        flags: o.u32("flags", "flags")?,
        name: o.string("name", "name")?,
        kind: o.enumeration("kind", "kind", SPAN_KINDS)?,
        start_time_unix_nano: o.u64("startTimeUnixNano", "start_time_unix_nano")?,
        end_time_unix_nano: o.u64("endTimeUnixNano", "end_time_unix_nano")?,
        attributes: attributes(&o)?,
        dropped_attributes_count: o.u32("droppedAttributesCount", "dropped_attributes_count")?,
        events: o.messages("events", "events", event)?,
        dropped_events_count: o.u32("droppedEventsCount", "dropped_events_count")?,
        links: o.messages("links", "links", link)?,
        dropped_links_count: o.u32("droppedLinksCount", "dropped_links_count")?,
        status: o.message("status", "status", status)?,
    })
}

fn event(o: Obj<'_>) -> Result<span::Event> {
    Ok(span::Event {
        time_unix_nano: o.u64("timeUnixNano", "time_unix_nano")?,
        name: o.string("name", "name")?,
        attributes: attributes(&o)?,
        dropped_attributes_count: o.u32("droppedAttributesCount", "dropped_attributes_count")?,
    })
}

fn link(o: Obj<'_>) -> Result<span::Link> {
    Ok(span::Link {
        trace_id: o.hex_bytes("traceId", "trace_id")?,
        span_id: o.hex_bytes("spanId", "span_id")?,
        trace_state: o.string("traceState", "trace_state")?,
        attributes: attributes(&o)?,
        dropped_attributes_count: o.u32("droppedAttributesCount", "dropped_attributes_count")?,
        flags: o.u32("flags", "flags")?,
    })
}

fn status(o: Obj<'_>) -> Result<Status> {
    Ok(Status { message: o.string("message", "message")?, code: o.enumeration("code", "code", STATUS_CODES)? })
}

#[cfg(test)]
mod tests {
    use super::super::decode_traces;

    #[test]
    fn accepts_both_key_styles_enum_names_null_and_string_ints() {
        let body = br#"{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
          "scopeSpans":[{"scope":null,"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174",
          "name":"GET /cart","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1544712660000000000","end_time_unix_nano":1544712661000000000,
          "status":{"code":2},"attributes":[{"key":"n","value":{"intValue":"7"}},{"key":"d","value":{"doubleValue":"NaN"}}]}]}]}]}"#;
        let req = decode_traces(body).expect("decodes");
        let rs = &req.resource_spans[0];
        assert_eq!(rs.resource.as_ref().map(|r| r.attributes.len()), Some(1));
        let span = &rs.scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.span_id.len(), 8);
        assert_eq!(span.kind, 2);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
        assert_eq!(span.attributes.len(), 2);
    }

    #[test]
    fn rejects_wrong_types_with_the_field_path() {
        let err = decode_traces(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}"#)
            .expect_err("name must be a string");
        assert!(err.to_string().contains("spans[0].name"), "{err}");
        let err = decode_traces(br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_BOGUS"}]}]}]}"#)
            .expect_err("unknown enum");
        assert!(err.to_string().contains("SPAN_KIND_BOGUS"), "{err}");
        assert!(decode_traces(b"{").is_err());
        assert!(decode_traces(b"[]").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut body = String::from(r#"{"resourceSpans":"#);
        body.push_str(&"[".repeat(100_000));
        assert!(decode_traces(body.as_bytes()).is_err());
    }
}
