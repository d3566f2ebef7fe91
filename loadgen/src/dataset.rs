//! Fixed data sets on disk: a header naming the signal, then each request
//! as a 4-byte little-endian length and its protobuf bytes. Written once by
//! the generator, read by benchmarks and tests, so that every run sends the
//! very same bytes.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::Signal;
use crate::send::Payload;

const MAGIC: &[u8; 8] = b"SLDSET1\n";

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a data set file (bad header)")]
    Header,
    #[error("request {0} does not decode: {1}")]
    Decode(usize, prost::DecodeError),
}

fn signal_byte(s: Signal) -> u8 {
    match s {
        Signal::Traces => b't',
        Signal::Logs => b'l',
        Signal::Metrics => b'm',
    }
}

pub struct Writer {
    out: BufWriter<std::fs::File>,
    signal: Signal,
}

impl Writer {
    pub fn create(path: &Path, signal: Signal) -> Result<Self, DatasetError> {
        let mut out = BufWriter::new(std::fs::File::create(path)?);
        out.write_all(MAGIC)?;
        out.write_all(&[signal_byte(signal)])?;
        Ok(Writer { out, signal })
    }

    pub fn write(&mut self, payload: &Payload) -> Result<(), DatasetError> {
        debug_assert_eq!(payload.signal(), self.signal);
        let bytes = payload.encode();
        self.out.write_all(&(bytes.len() as u32).to_le_bytes())?;
        self.out.write_all(&bytes)?;
        Ok(())
    }

    pub fn finish(mut self) -> Result<(), DatasetError> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(())
    }
}

/// Every request of a data set file, decoded.
pub fn read(path: &Path) -> Result<Vec<Payload>, DatasetError> {
    let mut input = BufReader::new(std::fs::File::open(path)?);
    let mut header = [0u8; 9];
    input.read_exact(&mut header)?;
    let signal = match (&header[..8] == MAGIC, header[8]) {
        (true, b't') => Signal::Traces,
        (true, b'l') => Signal::Logs,
        (true, b'm') => Signal::Metrics,
        _ => return Err(DatasetError::Header),
    };
    let mut out = Vec::new();
    let mut len = [0u8; 4];
    loop {
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(out),
            Err(e) => return Err(e.into()),
        }
        let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut bytes)?;
        out.push(Payload::decode(signal, &bytes).map_err(|e| DatasetError::Decode(out.len(), e))?);
    }
}
