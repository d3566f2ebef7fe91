//! The on-disk format of one WAL segment.
//!
//! ```text
//! segment := magic record*
//! magic   := "SLWAL001"                      (format version 1)
//! record  := len:u32le crc:u32le body        (crc32 of body; len = body length)
//! body    := seq:u64le kind:u8 tenant_len:u8 tenant payload
//! kind    := format << 4 | signal             (signal: 0 traces, 1 logs, 2 metrics)
//! ```
//!
//! The payload's format is an OTLP export request's protobuf (format 0,
//! all that earlier versions wrote) or a Prometheus remote-write
//! `WriteRequest`'s protobuf, uncompressed (format 1).
//!
//! A segment is named after the first sequence number it may hold
//! (`00000000000000000042.wal`). Reading stops at the first record that is
//! short or fails its checksum: that is a torn tail from a crash, and
//! everything before it is intact.

use bytes::{Buf, BufMut, Bytes};

use crate::model::{Signal, Tenant};

pub const MAGIC: &[u8; 8] = b"SLWAL001";
const HEADER: usize = 8;

/// How a record's payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Format {
    /// An OTLP export request of the record's signal, as protobuf.
    Otlp = 0,
    /// A Prometheus remote-write `WriteRequest`, as protobuf (metrics).
    RemoteWrite = 1,
}

impl Format {
    fn from_u8(v: u8) -> Option<Format> {
        [Format::Otlp, Format::RemoteWrite].into_iter().find(|f| *f as u8 == v)
    }
}

/// One record read back from the log.
#[derive(Clone, Debug)]
pub struct WalRecord {
    pub seq: u64,
    pub signal: Signal,
    pub format: Format,
    pub tenant: Tenant,
    pub payload: Bytes,
}

pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

pub fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_suffix(".wal")?.parse().ok()
}

/// Appends the encoding of one record to `out`.
pub fn encode(out: &mut Vec<u8>, seq: u64, (signal, format): (Signal, Format), tenant: &Tenant, payload: &[u8]) {
    let tenant = tenant.as_str().as_bytes();
    let body_len = 8 + 1 + 1 + tenant.len() + payload.len();
    let start = out.len();
    out.reserve(HEADER + body_len);
    out.put_u32_le(body_len as u32);
    out.put_u32_le(0);
    out.put_u64_le(seq);
    out.put_u8((format as u8) << 4 | signal as u8);
    out.put_u8(tenant.len() as u8);
    out.put_slice(tenant);
    out.put_slice(payload);
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads records from a whole segment's bytes. Yields records until the end
/// or the first damaged one; [`Reader::valid_len`] then tells how many bytes
/// were intact.
pub struct Reader {
    data: Bytes,
    pos: usize,
    damaged: bool,
}

impl Reader {
    /// `None` when the file does not start with the magic of a known version.
    pub fn new(data: Bytes) -> Option<Self> {
        if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
            return None;
        }
        Some(Self { data, pos: MAGIC.len(), damaged: false })
    }

    pub fn valid_len(&self) -> usize {
        self.pos
    }

    /// True when reading stopped before the end of the data.
    pub fn damaged(&self) -> bool {
        self.damaged
    }

    fn read_one(&self) -> Option<(WalRecord, usize)> {
        let rest = &self.data[self.pos..];
        if rest.len() < HEADER {
            return None;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().ok()?);
        let body = rest.get(HEADER..HEADER + len)?;
        if crc32fast::hash(body) != crc || len < 10 {
            return None;
        }
        let mut b = body;
        let seq = b.get_u64_le();
        let kind = b.get_u8();
        let signal = Signal::from_u8(kind & 0x0f)?;
        let format = Format::from_u8(kind >> 4)?;
        let tenant_len = b.get_u8() as usize;
        let tenant = std::str::from_utf8(b.get(..tenant_len)?).ok()?;
        let tenant = Tenant::new(tenant).ok()?;
        let payload_start = self.pos + HEADER + 10 + tenant_len;
        let end = self.pos + HEADER + len;
        let payload = self.data.slice(payload_start..end);
        Some((WalRecord { seq, signal, format, tenant, payload }, end))
    }
}

impl Iterator for Reader {
    type Item = WalRecord;

    fn next(&mut self) -> Option<WalRecord> {
        if self.pos >= self.data.len() || self.damaged {
            return None;
        }
        match self.read_one() {
            Some((record, end)) => {
                self.pos = end;
                Some(record)
            }
            None => {
                self.damaged = true;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(u64, &str, &[u8])]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (seq, tenant, payload) in records {
            let tenant = Tenant::new(tenant).expect("tenant");
            encode(&mut out, *seq, (Signal::Logs, Format::Otlp), &tenant, payload);
        }
        out
    }

    #[test]
    fn round_trips_records() {
        let data = segment(&[(1, "a", b"one"), (2, "b", b""), (3, "a", b"three")]);
        let len = data.len();
        let mut reader = Reader::new(Bytes::from(data)).expect("magic");
        let got: Vec<_> = reader.by_ref().map(|r| (r.seq, r.tenant.to_string(), r.payload)).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], (3, "a".to_owned(), Bytes::from_static(b"three")));
        assert_eq!(reader.valid_len(), len);
        assert!(!reader.damaged());
    }

    #[test]
    fn stops_at_a_torn_or_corrupt_tail() {
        let full = segment(&[(1, "a", b"one"), (2, "a", b"two")]);
        let first_len = segment(&[(1, "a", b"one")]).len();
        for cut in first_len..full.len() {
            let mut reader = Reader::new(Bytes::copy_from_slice(&full[..cut])).expect("magic");
            assert_eq!(reader.by_ref().count(), 1, "cut at {cut}");
            assert_eq!(reader.valid_len(), first_len);
        }
        let mut flipped = full.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        let mut reader = Reader::new(Bytes::from(flipped)).expect("magic");
        assert_eq!(reader.by_ref().count(), 1);
        assert!(reader.damaged());
    }

    #[test]
    fn keeps_the_payload_format_and_reads_earlier_records_as_otlp() {
        let tenant = Tenant::new("a").expect("tenant");
        let mut data = MAGIC.to_vec();
        encode(&mut data, 1, (Signal::Metrics, Format::RemoteWrite), &tenant, b"w");
        encode(&mut data, 2, (Signal::Metrics, Format::Otlp), &tenant, b"o");
        // Format 0 is the kind byte earlier versions wrote: the signal alone.
        assert_eq!(data[MAGIC.len() + HEADER + 8], Signal::Metrics as u8 | (Format::RemoteWrite as u8) << 4);
        // The last record ends kind, tenant_len (1), "a", "o".
        assert_eq!(data[data.len() - 4], Signal::Metrics as u8);
        let got: Vec<_> =
            Reader::new(Bytes::from(data)).expect("magic").map(|r| (r.signal, r.format, r.payload)).collect();
        assert_eq!(
            got,
            [
                (Signal::Metrics, Format::RemoteWrite, Bytes::from_static(b"w")),
                (Signal::Metrics, Format::Otlp, Bytes::from_static(b"o")),
            ]
        );
    }

    #[test]
    fn refuses_unknown_magic() {
        assert!(Reader::new(Bytes::from_static(b"NOTAWAL!")).is_none());
        assert!(Reader::new(Bytes::new()).is_none());
    }
}
