//! A span search and the two forms it is checked in: on a decoded span
//! ([`SpanQuery::matches`]) and on the columns of a record batch
//! ([`SpanQuery::coarse_mask`] and [`super::attributes::mask`], for the
//! head's chunks and the parts' row filters), so that rows are ruled out
//! before they are decoded.

use arrow::array::{Array, BooleanArray, Int64Array, RecordBatch, StringArray, UInt8Array};
use arrow::error::ArrowError;

use crate::model::{Span, StatusCode};

/// A span search; every field that is set must match.
#[derive(Clone, Debug, Default)]
pub struct SpanQuery {
    pub service: Option<String>,
    pub name: Option<String>,
    /// Attribute (span or resource) equality, values compared as text.
    pub attributes: Vec<(String, String)>,
    pub errors_only: bool,
    pub min_duration_nanos: Option<u64>,
    pub max_duration_nanos: Option<u64>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

/// Where the columns the coarse mask reads stand in a batch: start,
/// duration, service, name, status code.
pub(super) type MaskColumns = [usize; 5];

/// Their positions in a whole span batch ([`super::columns::schema`]).
pub(super) const SCHEMA_MASK_COLUMNS: MaskColumns = [3, 4, 5, 6, 8];

impl SpanQuery {
    pub fn matches(&self, s: &Span) -> bool {
        self.coarse(s.start_unix_nano, s.duration_nanos(), &s.resource.service, &s.name, s.status_code as u8)
            && self.attributes.iter().all(|(k, v)| {
                s.attributes.get(k).or_else(|| s.resource.attributes.get(k)).is_some_and(|a| a.to_text() == *v)
            })
    }

    /// Every condition but the attributes.
    fn coarse(&self, start: u64, duration: u64, service: &str, name: &str, status: u8) -> bool {
        start <= self.end_unix_nano
            && start.saturating_add(duration) >= self.start_unix_nano
            && self.service.as_deref().is_none_or(|v| v == service)
            && self.name.as_deref().is_none_or(|v| v == name)
            && (!self.errors_only || status == StatusCode::Error as u8)
            && self.min_duration_nanos.is_none_or(|d| duration >= d)
            && self.max_duration_nanos.is_none_or(|d| duration <= d)
    }

    /// The rows of `batch` that may match: time, duration, service, name and
    /// status checked on the columns at `at`; attributes are left to
    /// [`super::attributes::mask`].
    pub(super) fn coarse_mask(&self, batch: &RecordBatch, at: MaskColumns) -> Result<BooleanArray, ArrowError> {
        let (starts, durations) = (int64(batch, at[0])?, int64(batch, at[1])?);
        let (services, names) = (utf8(batch, at[2])?, utf8(batch, at[3])?);
        let statuses = batch
            .column(at[4])
            .as_any()
            .downcast_ref::<UInt8Array>()
            .ok_or_else(|| ArrowError::CastError("status_code is not u8".into()))?;
        Ok((0..batch.num_rows())
            .map(|i| {
                Some(self.coarse(
                    starts.value(i) as u64,
                    durations.value(i) as u64,
                    services.value(i),
                    names.value(i),
                    statuses.value(i),
                ))
            })
            .collect())
    }
}

fn int64(batch: &RecordBatch, i: usize) -> Result<&Int64Array, ArrowError> {
    batch.column(i).as_any().downcast_ref::<Int64Array>().ok_or_else(|| ArrowError::CastError("not i64".into()))
}

fn utf8(batch: &RecordBatch, i: usize) -> Result<StringArray, ArrowError> {
    let cast = arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8)?;
    cast.as_any().downcast_ref::<StringArray>().cloned().ok_or_else(|| ArrowError::CastError("not text".into()))
}
