//! Why a request was refused, and how each transport says it.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Malformed body or unusable request: not retryable.
    #[error("{0}")]
    Invalid(String),
    #[error("unsupported {0}")]
    UnsupportedMediaType(String),
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// The tenant is over its rate: retry after the delay.
    #[error("tenant {tenant} is over its {what} rate limit")]
    RateLimited { tenant: String, what: &'static str, retry_after: Duration },
    /// A queue or the memory budget is full: retry after the delay.
    #[error("server overloaded: {0} is full")]
    Overloaded(&'static str),
    /// The write-ahead log could not take the items (disk full, I/O error).
    #[error("cannot store the request durably: {0}")]
    Storage(String),
    #[error("server is shutting down")]
    ShuttingDown,
    /// No credentials, or credentials that name no key.
    #[error("{0}")]
    Unauthenticated(String),
    /// A key whose role does not allow the request.
    #[error("{0}")]
    PermissionDenied(String),
}

impl IngestError {
    /// How long a client should wait before retrying; `None` if it should not.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IngestError::RateLimited { retry_after, .. } => Some(*retry_after),
            IngestError::Overloaded(_) | IngestError::Storage(_) | IngestError::ShuttingDown => {
                Some(Duration::from_secs(1))
            }
            _ => None,
        }
    }

    /// Label for the refusal counter.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Invalid(_) => "invalid",
            IngestError::UnsupportedMediaType(_) => "unsupported_media_type",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::RateLimited { .. } => "rate_limited",
            IngestError::Overloaded(_) => "overloaded",
            IngestError::Storage(_) => "storage",
            IngestError::ShuttingDown => "shutting_down",
            IngestError::Unauthenticated(_) => "unauthenticated",
            IngestError::PermissionDenied(_) => "permission_denied",
        }
    }
}
