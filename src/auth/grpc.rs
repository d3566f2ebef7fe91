//! The OTLP/gRPC port's door, before a message is decoded: refuses while
//! memory is near its limit or the budget for decoding is spent
//! (UNAVAILABLE, with RetryInfo), reads the
//! `authorization` metadata, answers UNAUTHENTICATED or PERMISSION_DENIED,
//! and replaces the tenant metadata with the key's tenant.

use std::sync::Arc;

use sightline_collector::Pipeline;
use sightline_collector::receivers::otlp_grpc::to_status;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::{Request, Status};

use super::{Auth, Role};

#[derive(Clone)]
pub struct Interceptor {
    pub pipeline: Arc<Pipeline>,
    pub auth: Option<Auth>,
    /// The tenant metadata key (lower case).
    pub tenant_key: AsciiMetadataKey,
}

impl tonic::service::Interceptor for Interceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        self.pipeline.check_pressure().map_err(|e| to_status(&e))?;
        // Memory for decoding the message (tonic decodes before the handler
        // runs); released when the handler takes the message.
        let reserve = (self.pipeline.config().max_body_bytes / 4).max(1 << 20);
        let permit = self.pipeline.reserve(reserve).map_err(|e| to_status(&e))?;
        request.extensions_mut().insert(Arc::new(permit));
        let Some(auth) = &self.auth else {
            return Ok(request);
        };
        let authorization = request.metadata().get("authorization").map(|v| v.as_bytes());
        let caller = auth.check(authorization, Role::Ingest, "send telemetry").map_err(|denied| {
            if denied.unauthenticated() {
                Status::unauthenticated(denied.to_string())
            } else {
                Status::permission_denied(denied.to_string())
            }
        })?;
        let metadata = request.metadata_mut();
        metadata.remove(&self.tenant_key);
        if let Ok(v) = AsciiMetadataValue::try_from(caller.tenant.as_str()) {
            metadata.insert(self.tenant_key.clone(), v);
        }
        Ok(request)
    }
}
